"""The layering rules of the design, checked on the source: imports go down, never sideways."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests._workspace import LAYERS, PACKAGES, ROOT

# Import names of the third-party distributions a package may declare.
IMPORT_NAME = {"pyyaml": "yaml"}


def top_level_imports(path: Path) -> set[str]:
    """Absolute module names imported at module level (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def all_imports(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file, lazy imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def sources(layer: str) -> list[Path]:
    return sorted((PACKAGES[layer].path / "src").rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_of_a_higher_layer_or_the_meta_package(layer: str) -> None:
    higher = {"assay_" + name for name in LAYERS[LAYERS.index(layer) + 1 :]} | {"assay"}
    for path in sources(layer):
        wrong = all_imports(path) & higher
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}, a higher layer"


def private_imports(path: Path, own: str) -> set[str]:
    """Private modules or names (a part starting with ``_``) of other assay packages imported."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            top, *rest = module.split(".")
            if top.startswith("assay") and top != own and any(p.startswith("_") for p in rest):
                found.add(module)
    return found


@pytest.mark.parametrize("layer", [*LAYERS, "meta"])
def test_no_import_of_another_packages_private_parts(layer: str) -> None:
    if layer == "meta":
        own, paths = "assay", sorted((ROOT / "src").rglob("*.py"))
    else:
        own, paths = f"assay_{layer}", sources(layer)
    for path in paths:
        wrong = private_imports(path, own)
        assert not wrong, (
            f"{path.relative_to(ROOT)} imports {sorted(wrong)}, private to another package; "
            "expected only its public API"
        )


@pytest.mark.parametrize("layer", LAYERS)
def test_module_level_imports_are_declared(layer: str) -> None:
    package = PACKAGES[layer]
    declared = {IMPORT_NAME.get(d, d.replace("-", "_")) for d in package.requires}
    allowed = declared | set(sys.stdlib_module_names) | {package.import_name, "__future__"}
    for path in sources(layer):
        undeclared = top_level_imports(path) - allowed
        assert not undeclared, (
            f"{path.relative_to(ROOT)} imports {sorted(undeclared)} at module level, "
            f"but {package.dist} declares only {sorted(package.requires)}"
        )


@pytest.mark.parametrize("layer", LAYERS)
def test_declared_assay_dependencies_are_lower_layers(layer: str) -> None:
    lower = {"assay-" + name for name in LAYERS[: LAYERS.index(layer)]}
    wrong = set(PACKAGES[layer].local_requires) - lower
    assert not wrong, f"assay-{layer} declares {sorted(wrong)}, which are not lower layers"


def test_scope_is_standard_library_only_with_relative_imports() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert PACKAGES["scope"].requires == ()
    for path in sources("scope"):
        foreign = all_imports(path) - stdlib
        assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}: not vendorable"


@pytest.mark.parametrize("layer", LAYERS)
def test_package_has_its_files(layer: str) -> None:
    path = PACKAGES[layer].path
    for name in ["README.md", "CHANGELOG.md", "pyproject.toml", f"src/assay_{layer}/py.typed"]:
        assert (path / name).is_file(), f"packages/{layer}/{name} is missing"
