"""Every package builds a wheel and installs alone, pulling in only what it declares."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests._workspace import LAYERS, PACKAGES, ROOT, canonical

pytestmark = pytest.mark.slow

# Run in the fresh environment: which installed distributions are not reachable from the root
# requirement through declared dependencies? Stdlib only, since the environment holds nothing else.
_UNREACHABLE = """
import importlib.metadata as md, json, re, sys
name = lambda s: re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", s).group(0)).lower()
installed = {name(d.metadata["Name"]): d for d in md.distributions()}
seen, todo = set(), [sys.argv[1]]
while todo:
    current = todo.pop()
    if current in seen or current not in installed:
        continue
    seen.add(current)
    for req in installed[current].requires or []:
        if "extra ==" not in req.replace("extra==", "extra =="):
            todo.append(name(req))
print(json.dumps({"installed": sorted(installed), "unreachable": sorted(set(installed) - seen)}))
"""


def uv(*args: str | Path) -> str:
    command = [sys.executable, "-m", "uv", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the five packages and of the meta-package, built once for the session."""
    out = tmp_path_factory.mktemp("wheelhouse")
    for source in [*(PACKAGES[layer].path for layer in LAYERS), ROOT]:
        uv("build", "--wheel", "--quiet", "--out-dir", out, source)
    return out


def install_alone(dist: str, wheelhouse: Path, venv: Path) -> dict[str, list[str]]:
    """Install ``dist`` from the wheelhouse (third-party ones from the index) into a new venv."""
    uv("venv", "--quiet", venv)
    python = venv / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", python, "--find-links", wheelhouse, dist)
    report = subprocess.run(
        [python, "-c", _UNREACHABLE, dist], capture_output=True, text=True, check=True
    )
    return json.loads(report.stdout)


def test_every_package_and_the_meta_package_build_a_typed_wheel(wheelhouse: Path) -> None:
    for layer in LAYERS:
        (wheel,) = wheelhouse.glob(f"assay_{layer}-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        assert f"assay_{layer}/__init__.py" in names
        assert f"assay_{layer}/py.typed" in names
    (meta,) = wheelhouse.glob("assay-*.whl")
    assert "assay/__init__.py" in zipfile.ZipFile(meta).namelist()


@pytest.mark.parametrize("layer", LAYERS)
def test_package_installs_with_only_its_declared_dependencies(
    layer: str, wheelhouse: Path, tmp_path: Path
) -> None:
    package = PACKAGES[layer]
    env = install_alone(package.dist, wheelhouse, tmp_path / "venv")

    assert env["unreachable"] == [], f"{package.dist} installed undeclared {env['unreachable']}"
    assay_dists = {d for d in env["installed"] if d.startswith("assay")}
    expected = {package.dist}
    todo = list(package.local_requires)
    while todo:  # every level down: dependencies of dependencies
        dependency = todo.pop()
        if dependency not in expected:
            expected.add(dependency)
            todo.extend(PACKAGES[dependency.removeprefix("assay-")].local_requires)
    assert assay_dists == expected
    if layer == "scope":
        assert env["installed"] == ["assay-scope"], "assay-scope must pull in nothing else"
    if layer != "backends":
        assert "submitit" not in env["installed"]

    # Every public name imports with the declared dependencies alone.
    python = tmp_path / "venv" / "bin" / "python"
    check = f"import {package.import_name} as m; [getattr(m, n) for n in m.__all__]"
    subprocess.run([python, "-c", check], check=True)


def test_meta_package_installs_all_six_distributions(wheelhouse: Path, tmp_path: Path) -> None:
    env = install_alone("assay", wheelhouse, tmp_path / "venv")
    assert env["unreachable"] == []
    expected = {"assay", *(canonical(PACKAGES[layer].dist) for layer in LAYERS)}
    assert expected <= set(env["installed"])
