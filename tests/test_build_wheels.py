"""The packages' versions, the ranges between them, and the documented command that builds them.

Each package has one version source (``__version__`` in its ``__about__.py``, read as text by
the build); an assay package depends on another within that one's minor series; and
``python3 scripts/build_wheels.py`` builds the six wheels and sdists into one folder, the sdists
holding their own package only.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests._workspace import (
    LAYERS,
    PACKAGES,
    ROOT,
    canonical,
    requirement_name,
    tomllib,
    version_of,
    version_source,
)

COMMAND = "python3 scripts/build_wheels.py"

#: Every distribution, with its folder and import name: the five layers, then the meta-package.
PROJECTS = {package.dist: (package.path, package.import_name) for package in PACKAGES.values()}
PROJECTS["assay"] = (ROOT, "assay")


def project_table(folder: Path) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    return table


def compatible_range(version: str) -> str:
    """The range a dependent asks of ``version``: its minor series while 0.x, else its major."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={major}.{minor},<{upper}"


def assay_requirements(requirements: list[str]) -> dict[str, SpecifierSet]:
    found = {}
    for text in requirements:
        requirement = Requirement(text)
        if canonical(requirement.name) in PROJECTS:
            found[canonical(requirement.name)] = requirement.specifier
    return found


def test_compatible_range() -> None:
    assert compatible_range("0.1.0") == ">=0.1,<0.2"
    assert compatible_range("0.12.3") == ">=0.12,<0.13"
    assert compatible_range("2.3.1") == ">=2.3,<3"


@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_the_version_has_one_source_that_imports_nothing(dist: str) -> None:
    folder, import_name = PROJECTS[dist]
    project = project_table(folder)
    assert "version" not in project, f"{dist}: the version is written in pyproject.toml"
    assert project["dynamic"] == ["version"]
    source = version_source(folder)
    assert source == folder / "src" / import_name / "__about__.py"
    # Read as text by the build and copied along when assay_scope is vendored: one assignment.
    body = ast.parse(source.read_text()).body
    assert not [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
    assert importlib.import_module(import_name).__version__ == version_of(folder)


@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_assay_dependencies_ask_for_the_minor_series_of_the_version_beside_them(dist: str) -> None:
    folder, _ = PROJECTS[dist]
    declared = project_table(folder)["dependencies"]
    assert isinstance(declared, list)
    local = assay_requirements(declared)
    expected_names = {requirement_name(r) for r in declared} & set(PROJECTS)
    assert set(local) == expected_names
    for name, specifier in local.items():
        wanted = compatible_range(version_of(PROJECTS[name][0]))
        assert specifier == SpecifierSet(wanted), (
            f"{dist} asks for {name}{specifier}; expected {name}{wanted} (the version beside it "
            f"is {version_of(PROJECTS[name][0])})"
        )


def test_the_build_command_is_documented() -> None:
    for page in [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]:
        assert COMMAND in page.read_text(), f"{page.name} does not show {COMMAND!r}"


def test_every_pyproject_names_the_backend_the_build_command_installs() -> None:
    script = (ROOT / "scripts" / "build_wheels.py").read_text()
    for folder, _ in PROJECTS.values():
        config = tomllib.loads((folder / "pyproject.toml").read_text())
        for requirement in config["build-system"]["requires"]:
            assert f'"{requirement}"' in script, f"{folder}: {requirement} is not what is installed"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the documented command writes, run once for the module."""
    out = tmp_path_factory.mktemp("built")
    command = [sys.executable, "scripts/build_wheels.py", "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{COMMAND} failed:\n{done.stdout}{done.stderr}"
    return out


def file_stem(dist: str) -> str:
    return f"{dist.replace('-', '_')}-{version_of(PROJECTS[dist][0])}"


@pytest.mark.slow
def test_the_command_builds_six_wheels_and_six_sdists_with_their_versions(built: Path) -> None:
    expected = {f"{file_stem(d)}-py3-none-any.whl" for d in PROJECTS}
    expected |= {f"{file_stem(d)}.tar.gz" for d in PROJECTS}
    assert {path.name for path in built.iterdir()} == expected


def sdist_top_level(dist: str, built: Path) -> set[str]:
    with tarfile.open(built / f"{file_stem(dist)}.tar.gz") as sdist:
        names = sdist.getnames()
    prefix = file_stem(dist) + "/"
    assert all(name.startswith(prefix) for name in names)
    return {name.removeprefix(prefix).split("/")[0] for name in names} - {""}


@pytest.mark.slow
@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_each_sdist_holds_its_own_package_and_documents_only(built: Path, dist: str) -> None:
    _, import_name = PROJECTS[dist]
    top = sdist_top_level(dist, built)
    # Never another package, the tests, the benchmarks, the docs or the examples.
    assert not top & {"packages", "tests", "bench", "docs", "examples", "scripts", "site"}
    assert top <= {"src", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO",
                   ".gitignore"}  # fmt: skip
    with tarfile.open(built / f"{file_stem(dist)}.tar.gz") as sdist:
        packages = {name.split("/")[2] for name in sdist.getnames() if "/src/" in name}
    assert packages == {import_name}


def wheel_metadata(dist: str, built: Path) -> tuple[str, list[str]]:
    stem = file_stem(dist)
    with zipfile.ZipFile(built / f"{stem}-py3-none-any.whl") as wheel:
        text = wheel.read(f"{stem}.dist-info/METADATA").decode()
    metadata = Parser().parsestr(text)
    return metadata["Version"], metadata.get_all("Requires-Dist") or []


@pytest.mark.slow
@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_wheel_metadata_carries_the_version_and_the_ranges(built: Path, dist: str) -> None:
    version, requires = wheel_metadata(dist, built)
    assert version == version_of(PROJECTS[dist][0])
    local = assay_requirements(requires)
    declared = project_table(PROJECTS[dist][0])["dependencies"]
    assert isinstance(declared, list)
    assert local == assay_requirements(declared)
    for name, specifier in local.items():
        assert specifier == SpecifierSet(compatible_range(version_of(PROJECTS[name][0])))
    if dist == "assay":
        assert set(local) == {PACKAGES[layer].dist for layer in LAYERS}


def test_installed_metadata_matches_the_version_source() -> None:
    # The editable installs of the workspace report the version of their source file.
    for dist, (folder, _) in PROJECTS.items():
        assert importlib.metadata.version(dist) == version_of(folder), dist
