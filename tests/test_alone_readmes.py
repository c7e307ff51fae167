"""Each package's README promises hold for a user who installs that one package.

The README's example runs in a fresh environment holding only the package and what it declares
(no other assay layer, no numpy, rich, pandas or submitit unless declared), and its
``pip install`` lines name the package and extras it really has.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._workspace import LAYERS, PACKAGES, canonical

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+, the packages support 3.10
    import tomli as tomllib

# A fenced Python block, unless the line before it is the no-run marker the docs use.
_BLOCK = re.compile(
    r"(?P<skip><!--\s*no-run\s*-->\s*\n)?^```python[^\n]*\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
_PIP_INSTALL = re.compile(r"^pip install (?P<spec>\S+)", re.MULTILINE)
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


def uv(*args: str | Path) -> None:
    command = [sys.executable, "-m", "uv", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the five packages, built once for the module."""
    out = tmp_path_factory.mktemp("wheelhouse")
    for layer in LAYERS:
        uv("build", "--wheel", "--quiet", "--out-dir", out, PACKAGES[layer].path)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_readme_example_runs_with_the_package_installed_alone(
    layer: str, wheelhouse: Path, tmp_path: Path
) -> None:
    script = example_script(layer)
    assert script.strip(), f"packages/{layer}/README.md has no runnable example"
    venv = tmp_path / "venv"
    uv("venv", "--quiet", venv)
    python = venv / "bin" / "python"
    dist = PACKAGES[layer].dist
    uv("pip", "install", "--quiet", "--python", python, "--find-links", wheelhouse, dist)
    work = tmp_path / "work"
    work.mkdir()
    (work / "example.py").write_text(script, encoding="utf-8")
    # help() renders every docstring and signature, as a user exploring the package would.
    render = f"import pydoc, {PACKAGES[layer].import_name} as m; pydoc.render_doc(m)"
    for command in (["example.py"], ["-c", render]):
        done = subprocess.run(
            [python, *command], cwd=work, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, (
            f"packages/{layer}/README.md: {' '.join(command)} failed with only {dist} "
            f"installed:\n{done.stderr}"
        )
