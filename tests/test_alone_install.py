"""Each package's promises hold for a user who installs that one package.

The README's example runs in a fresh environment holding only the package and what it declares
(no other assay layer, no numpy, rich, pandas or submitit unless declared), its ``pip install``
lines name the package and extras it really has, and user code written against its public API
passes ``mypy --strict`` there, with only the package's own type information.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._workspace import LAYERS, PACKAGES, ROOT, canonical

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+, the packages support 3.10
    import tomli as tomllib

# A fenced Python block, unless the line before it is the no-run marker the docs use.
_BLOCK = re.compile(
    r"(?P<skip><!--\s*no-run\s*-->\s*\n)?^```python[^\n]*\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
_PIP_INSTALL = re.compile(r"^pip install (?!packages/)(?P<spec>\S+)", re.MULTILINE)
# The command for a checkout: the package's folder and those of the layers it builds on.
_FROM_CHECKOUT = re.compile(r"pip install (?P<folders>packages/\w+(?: packages/\w+)*)")
_SPEC = re.compile(r"^[\"']?(?P<name>[A-Za-z0-9._-]+)(?:\[(?P<extras>[^\]]*)\])?[\"']?$")


def readme(layer: str) -> str:
    return (PACKAGES[layer].path / "README.md").read_text(encoding="utf-8")


def example_script(layer: str) -> str:
    """The README's runnable blocks in order, as one script (as the reader would run them)."""
    blocks = [m["code"] for m in _BLOCK.finditer(readme(layer)) if not m["skip"]]
    return "\n".join(blocks)


def test_the_block_reader_skips_no_run_blocks() -> None:
    fence = "```"
    text = (
        f"x\n{fence}python\na = 1\n{fence}\n<!-- no-run -->\n{fence}python\nboom()\n{fence}\n"
        f"{fence}python\nb = 2\n{fence}\n"
    )
    found = [(bool(m["skip"]), m["code"]) for m in _BLOCK.finditer(text)]
    assert found == [(False, "a = 1\n"), (True, "boom()\n"), (False, "b = 2\n")]


@pytest.mark.parametrize("layer", LAYERS)
def test_readme_install_lines_name_the_package_and_its_extras(layer: str) -> None:
    project = tomllib.loads((PACKAGES[layer].path / "pyproject.toml").read_text())["project"]
    extras = set(project.get("optional-dependencies", {}))
    specs = [m["spec"] for m in _PIP_INSTALL.finditer(readme(layer))]
    assert specs, f"packages/{layer}/README.md has no 'pip install' line"
    for spec in specs:
        match = _SPEC.match(spec)
        assert match, f"packages/{layer}/README.md: cannot read the install line {spec!r}"
        assert canonical(match["name"]) == PACKAGES[layer].dist, (
            f"packages/{layer}/README.md installs {spec!r}; expected {PACKAGES[layer].dist}"
        )
        named = {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
        assert named <= extras, (
            f"packages/{layer}/README.md installs {spec!r}: extras {sorted(named - extras)} "
            f"are not declared (declared: {sorted(extras)})"
        )


def closure(layer: str) -> set[str]:
    """The layer and every assay layer it depends on, directly or not."""
    found = {layer}
    for dependency in PACKAGES[layer].local_requires:
        found |= closure(dependency.removeprefix("assay-"))
    return found


def checkout_folders(layer: str) -> list[str]:
    """The folders the README's checkout command installs."""
    commands = [m["folders"].split() for m in _FROM_CHECKOUT.finditer(readme(layer))]
    assert len(commands) == 1, (
        f"packages/{layer}/README.md should give one 'pip install packages/...' command for a "
        f"checkout; found {commands}"
    )
    return commands[0]


@pytest.mark.parametrize("layer", LAYERS)
def test_readme_checkout_command_names_every_layer_needed_and_no_other(layer: str) -> None:
    # pip install packages/ops alone looks assay-scope up on the index, and fails.
    named = {folder.removeprefix("packages/") for folder in checkout_folders(layer)}
    assert named == closure(layer), (
        f"packages/{layer}/README.md installs {sorted(named)} from a checkout; "
        f"expected {sorted(closure(layer))}"
    )


def uv(*args: str | Path) -> None:
    command = [sys.executable, "-m", "uv", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return the python of a venv holding one package and ``tools``, made once per pair.

    The package is installed as its README says to from a checkout (its folder and those of
    the layers below), so that command is checked too. Tools get their own venv: mypy's
    dependencies (typing_extensions...) must not hide an undeclared import of the package.
    """
    made: dict[tuple[str, tuple[str, ...]], Path] = {}

    def python_for(layer: str, *tools: str) -> Path:
        if (layer, tools) not in made:
            venv = tmp_path_factory.mktemp(f"alone-{layer}") / "venv"
            uv("venv", "--quiet", venv)
            python = venv / "bin" / "python"
            folders = [ROOT / folder for folder in checkout_folders(layer)]
            uv("pip", "install", "--quiet", "--python", python, *folders)
            if tools:
                uv("pip", "install", "--quiet", "--python", python, *tools)
            made[layer, tools] = python
        return made[layer, tools]

    return python_for


def run_in(python: Path, work: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *command], cwd=work, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_readme_example_runs_with_the_package_installed_alone(
    layer: str, alone: Callable[..., Path], tmp_path: Path
) -> None:
    script = example_script(layer)
    assert script.strip(), f"packages/{layer}/README.md has no runnable example"
    python = alone(layer)
    (tmp_path / "example.py").write_text(script, encoding="utf-8")
    # help() renders every docstring and signature, as a user exploring the package would.
    render = f"import pydoc, {PACKAGES[layer].import_name} as m; pydoc.render_doc(m)"
    for command in (["example.py"], ["-c", render]):
        done = run_in(python, tmp_path, *command)
        assert done.returncode == 0, (
            f"packages/{layer}/README.md: {' '.join(command)} failed with only "
            f"{PACKAGES[layer].dist} installed:\n{done.stderr}"
        )


@pytest.mark.slow
def test_steps_alone_says_where_the_pools_and_slurm_come_from(
    alone: Callable[..., Path], tmp_path: Path
) -> None:
    # No assay-backends: the "assay.backends" entry-point group is empty.
    probe = (
        "from assay_steps import Backend\n"
        "try:\n"
        "    Backend.model_validate({'backend': 'ProcessPool'})\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    done = run_in(alone("steps"), tmp_path, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert "backend='ProcessPool' is not a known backend" in done.stdout
    assert "pip install assay-backends" in done.stdout


# User code as the README and the guides write it. A "type: ignore[...]" marks a call mypy
# must refuse: under --strict an ignore that is not needed is itself an error, so each one
# checks that a signature reached the user intact.
USER_CODE = {
    "scope": """
from assay_scope import auto_param, launch, param_scope


@auto_param("train")
def train(data: str, lr: float = 0.1, epochs: int = 10) -> str:
    width: int = param_scope.model.width | 32
    return f"{data} {lr} {epochs} {width}"


@auto_param("net")
class Model:
    def __init__(self, width: int = 4) -> None:
        self.width = width


class Bigger(Model):
    pass


with param_scope("train.epochs=3", **{"model.width": 64}) as ps, param_scope.record() as used:
    out: str = train("mnist", lr=0.01)
    train("mnist", lr="fast")  # type: ignore[arg-type]
    lr: float = ps.train.lr(0.1)
    model: Model = Bigger(width=8)
    assert isinstance(model, Model)
    param_scope.seed = 1
read: dict[str, object] = dict(used)
result: str = launch(train, argv=["d"])
""",
    "context": """
from assay_context import ContextMutationError, FrozenContext, LoggingContext, thaw

ctx = FrozenContext({"lr": 0.01, "model": {"layers": [64, 64]}})
ctx.add("seed", 7)
try:
    ctx["lr"] = 0.1
except ContextMutationError as error:
    print(error)
layers: list[int] = thaw(ctx["model"])["layers"]
ctx.record("loss", 0.25, tags={"epoch": 1})
ctx.artifacts.add("notes.txt", b"converged", metadata={"epoch": 1})
run = LoggingContext(ctx)
run.get("seed")
keys: set[str] = set(run.reads)
size: int = len(ctx)
child = ctx.child()
ctx.merge(child)
""",
    "ops": """
from typing import Any

from assay_ops import Capture, RunRecord, SeedBundle, operation


@operation
def estimate_pi(params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    rng = seeds.numpy()
    xy = rng.random((params["n"], 2))
    capture.metric("pi_estimate", float(4.0 * ((xy**2).sum(axis=1) <= 1).mean()))


@operation(name="fit")
def fit(params: dict[str, Any]) -> dict[str, float]:
    return {"accuracy": 0.9}


params = {"n": 100}
record: RunRecord = estimate_pi.run(params=params, seeds=SeedBundle(42, params, replicate=0))
again: RunRecord = fit.run(params=params)
assert RunRecord.from_json(record.to_json()) == record
status: str = record.status
""",
    "steps": """
import tempfile

from assay_steps import Cached, Chain, Step, StepItems


class Scale(Step):
    factor: float = 2.0

    def _run(self, value: float) -> float:
        return value * self.factor


class Shift(Step):
    offset: float = 0.0

    def _run(self, value: float) -> float:
        return value + self.offset


folder = tempfile.mkdtemp()
pipeline = Chain(
    steps=[{"type": "Scale", "factor": 3}, {"type": "Shift", "offset": 1}],
    infra={"backend": "Cached", "folder": folder},
)
items: StepItems = pipeline.run_many([1.0, 2.0])
typed = Chain(steps=[Scale(factor=3), Shift()], infra=Cached(folder=folder))
bigger: Scale = Scale(factor=2).clone(factor=4)
""",
    "backends": """
from assay_backends import ProcessPool, ThreadPool
from assay_steps import Step


class Cube(Step):
    def _run(self, value: int) -> int:
        return value**3


step = Cube(infra={"backend": "ProcessPool", "folder": "cache", "max_jobs": 2})
threads = Cube(infra=ThreadPool(folder="cache", max_jobs=4))
processes = Cube(infra=ProcessPool(folder="cache-p"))
""",
}

# Steps and backends are pydantic models: configs given as dicts (and "folder" as a str) are
# converted at run time, and mypy sees that only through pydantic's plugin, as the steps
# README says.
MYPY_CONFIG = {
    "steps": "[mypy]\nstrict = True\nplugins = pydantic.mypy\n",
    "backends": "[mypy]\nstrict = True\nplugins = pydantic.mypy\n",
}


def test_every_layer_has_user_code_to_type_check() -> None:
    assert set(USER_CODE) == set(LAYERS)


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_user_code_passes_mypy_strict_with_the_package_installed_alone(
    layer: str, alone: Callable[..., Path], tmp_path: Path
) -> None:
    python = alone(layer, "mypy")
    (tmp_path / "user_code.py").write_text(USER_CODE[layer].lstrip(), encoding="utf-8")
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG.get(layer, "[mypy]\nstrict = True\n"))
    done = run_in(python, tmp_path, "-m", "mypy", "--config-file", "mypy.ini", "user_code.py")
    assert done.returncode == 0, (
        f"mypy --strict refuses user code of {PACKAGES[layer].dist}:\n{done.stdout}{done.stderr}"
    )
