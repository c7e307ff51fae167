"""Facts about the workspace that the cross-package tests share: packages, layers, dependencies."""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+, the packages support 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

#: Layer order from the design: a package may import only from layers before it.
LAYERS = ["scope", "context", "ops", "steps", "backends"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def canonical(name: str) -> str:
    """Normalise a distribution name the way packaging does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Return the distribution name at the start of a PEP 508 requirement string."""
    match = _NAME.match(requirement.strip())
    assert match, f"cannot read a distribution name from requirement {requirement!r}"
    return canonical(match.group(0))


@dataclass(frozen=True)
class Package:
    """One workspace member: its folder, distribution name and declared runtime dependencies."""

    layer: str
    path: Path
    dist: str
    requires: tuple[str, ...]

    @property
    def import_name(self) -> str:
        return "assay_" + self.layer

    @property
    def local_requires(self) -> tuple[str, ...]:
        """Declared dependencies that are other assay packages."""
        return tuple(r for r in self.requires if r.startswith("assay-"))


def load_package(layer: str) -> Package:
    path = ROOT / "packages" / layer
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    requires = tuple(requirement_name(r) for r in project.get("dependencies", []))
    return Package(layer, path, canonical(project["name"]), requires)


PACKAGES = {layer: load_package(layer) for layer in LAYERS}


def vendor_scope(root: Path) -> Path:
    """Copy ``assay_scope`` into ``root/othertool/_vendor/`` as a tool vendoring it would.

    Returns the ``othertool`` package folder (``othertool._vendor.assay_scope`` imports from
    ``root``).
    """
    tool = root / "othertool"
    vendor = tool / "_vendor"
    vendor.mkdir(parents=True)
    (tool / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    source = PACKAGES["scope"].path / "src" / "assay_scope"
    shutil.copytree(source, vendor / "assay_scope", ignore=shutil.ignore_patterns("__pycache__"))
    return tool


def version_source(project: Path) -> Path:
    """The file a project's version is read from (``[tool.hatch.version] path``)."""
    config = tomllib.loads((project / "pyproject.toml").read_text())
    return project / config["tool"]["hatch"]["version"]["path"]


def version_of(project: Path) -> str:
    """The version of the project at ``project`` (a package folder or the root), from its source."""
    match = re.search(
        r'^__version__ = "([^"]+)"$', version_source(project).read_text(encoding="utf-8"), re.M
    )
    assert match, f'{version_source(project)} has no line __version__ = "..."'
    return match[1]
