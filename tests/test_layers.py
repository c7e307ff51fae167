"""The layering rules of the design, checked on the source: imports go down, never sideways."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests._workspace import LAYERS, PACKAGES, ROOT

# Import names of the third-party distributions a package may declare.
IMPORT_NAME = {"pyyaml": "yaml"}

#: The assay packages each package may import, by layer ("meta" is the assay meta-package):
#: only layers below it. Which of those it uses is a design choice; a layer above is reached
#: only through entry points (the backends group), never by name.
ALLOWED: dict[str, frozenset[str]] = {
    "scope": frozenset(),
    "context": frozenset({"scope"}),
    "ops": frozenset({"scope", "context"}),
    "steps": frozenset({"scope", "context", "ops"}),
    "backends": frozenset({"scope", "context", "ops", "steps"}),
    "meta": frozenset({"scope", "context", "ops", "steps", "backends"}),
}
#: Import name of each layer's package.
MODULE = {**{layer: f"assay_{layer}" for layer in LAYERS}, "meta": "assay"}
#: Calls that import (or look up) the module their first argument names.
DYNAMIC_IMPORTS = {"import_module", "__import__", "find_spec"}


def _dynamic_import(node: ast.Call) -> str | None:
    """The module a call such as ``importlib.import_module("name")`` names, if a literal."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in DYNAMIC_IMPORTS or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


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


def source_imports(source: str, filename: str = "<source>") -> set[str]:
    """Every absolute top-level module name a source imports anywhere.

    Lazy imports inside functions count, and so do ``TYPE_CHECKING`` blocks and calls that
    import a module named by a literal: ``importlib.import_module("name")``,
    ``__import__("name")``, ``importlib.util.find_spec("name")``.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            module = _dynamic_import(node)
            # A name relative to a package (".sub") is one of that package's own modules.
            if module is not None and not module.startswith("."):
                names.add(module.split(".")[0])
    return names


def all_imports(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (see ``source_imports``)."""
    return source_imports(path.read_text(encoding="utf-8"), str(path))


def layer_violations(source: str, layer: str) -> set[str]:
    """The assay packages a source of ``layer`` imports that the map does not allow it."""
    permitted = {MODULE[name] for name in ALLOWED[layer]} | {MODULE[layer]}
    return {name for name in source_imports(source) if name in MODULE.values()} - permitted


def sources(layer: str) -> list[Path]:
    if layer == "meta":
        return sorted((ROOT / "src").rglob("*.py"))
    return sorted((PACKAGES[layer].path / "src").rglob("*.py"))


def test_the_map_covers_every_layer_and_allows_only_lower_ones() -> None:
    order = [*LAYERS, "meta"]
    assert set(ALLOWED) == set(order)
    for layer, allowed in ALLOWED.items():
        higher = set(order[order.index(layer) :])
        assert not allowed & higher, f"{layer} may import {sorted(allowed & higher)}"


@pytest.mark.parametrize("layer", [*LAYERS, "meta"])
def test_every_import_of_an_assay_package_is_allowed_by_the_map(layer: str) -> None:
    for path in sources(layer):
        wrong = layer_violations(path.read_text(encoding="utf-8"), layer)
        assert not wrong, (
            f"{path.relative_to(ROOT)} imports {sorted(wrong)}; {MODULE[layer]} may import "
            f"only {sorted(MODULE[name] for name in ALLOWED[layer]) or 'no assay package'}"
        )


@pytest.mark.parametrize(
    "snippet",
    [
        # How assay_steps used to reach the layer above: named in a string, not an import.
        "import importlib\n\ndef load():\n    importlib.import_module('assay_backends')\n",
        "from importlib import import_module\nimport_module('assay_backends._pools')\n",
        "def load():\n    return __import__('assay_backends')\n",
        "import importlib.util\nimportlib.util.find_spec('assay')\n",
        "def load():\n    from assay_backends import ProcessPool\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import assay_backends\n",
    ],
)
def test_the_checker_reports_an_upward_import_however_it_is_written(snippet: str) -> None:
    assert layer_violations(snippet, "steps") & {"assay_backends", "assay"}


def test_the_checker_allows_what_the_map_allows() -> None:
    snippet = (
        "import importlib\nfrom assay_ops import operation\nimport assay_scope\n"
        "importlib.import_module('assay_context')\nimportlib.import_module('.sub', 'x')\n"
        "importlib.import_module(name)\n"
    )
    assert layer_violations(snippet, "steps") == set()
    assert layer_violations(snippet, "context") == {"assay_ops"}
    assert layer_violations("import assay_context\n", "scope") == {"assay_context"}


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
def test_declared_assay_dependencies_are_allowed_by_the_map(layer: str) -> None:
    allowed = {"assay-" + name for name in ALLOWED[layer]}
    wrong = set(PACKAGES[layer].local_requires) - allowed
    assert not wrong, f"assay-{layer} declares {sorted(wrong)}, which the layer map does not allow"


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
