"""No package imports, even lazily inside a function, a module its user was not told to install.

``tests/test_layers.py`` checks module-level imports; an import inside a function only fails
when that function runs, which for a user who installed one package is the first time they
call it. Every import anywhere in a package's source (``import``, ``from``, and
``importlib.import_module`` / ``find_spec`` of a literal name) must name the standard library,
the package itself, a declared dependency, a declared extra, or an optional module the
package documents and handles when it is absent.
"""

from __future__ import annotations

import ast
import sys

import pytest

from tests._workspace import LAYERS, PACKAGES, ROOT, requirement_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+, the packages support 3.10
    import tomli as tomllib

# Optional modules a package documents, imported on use with a clear error when missing.
DOCUMENTED_OPTIONAL = {
    "ops": {"torch"},  # SeedBundle.torch() says to pip install torch
}
IMPORT_NAME = {"pyyaml": "yaml"}
_DYNAMIC = {"import_module", "find_spec", "__import__"}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(source: str) -> set[str]:
    """Top-level module names a source imports anywhere, outside ``if TYPE_CHECKING:`` blocks."""
    names: set[str] = set()
    todo: list[ast.AST] = [ast.parse(source)]
    while todo:
        node = todo.pop()
        if _type_checking_only(node):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in _DYNAMIC
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
        todo.extend(ast.iter_child_nodes(node))
    return names


def test_the_reader_sees_lazy_and_dynamic_imports_but_not_type_checking_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\n"
        "def f():\n    import lazy.sub\n    from other import x\n"
        "    importlib.import_module('dynamic.mod')\n    importlib.util.find_spec('probe')\n"
        "    from . import relative\n"
    )
    assert imported_names(source) == {"typing", "lazy", "other", "dynamic", "probe"}


def allowed(layer: str) -> set[str]:
    package = PACKAGES[layer]
    project = tomllib.loads((package.path / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    declared = {requirement_name(r) for r in requirements}
    modules = {IMPORT_NAME.get(d, d.replace("-", "_")) for d in declared}
    return (
        modules
        | set(sys.stdlib_module_names)
        | {package.import_name, "__future__"}
        | DOCUMENTED_OPTIONAL.get(layer, set())
    )


@pytest.mark.parametrize("layer", LAYERS)
def test_every_import_anywhere_is_declared_or_documented(layer: str) -> None:
    permitted = allowed(layer)
    for path in sorted((PACKAGES[layer].path / "src").rglob("*.py")):
        unknown = imported_names(path.read_text(encoding="utf-8")) - permitted
        assert not unknown, (
            f"{path.relative_to(ROOT)} imports {sorted(unknown)}, which {PACKAGES[layer].dist} "
            "neither declares (dependencies or extras) nor documents as optional"
        )


def test_documented_optional_modules_are_really_imported() -> None:
    # An entry left here after the import is gone would let a future undeclared import pass.
    for layer, modules in DOCUMENTED_OPTIONAL.items():
        found: set[str] = set()
        for path in (PACKAGES[layer].path / "src").rglob("*.py"):
            found |= imported_names(path.read_text(encoding="utf-8"))
        assert modules <= found, f"{layer}: {sorted(modules - found)} no longer imported"


def test_the_optional_imports_are_documented_where_users_read() -> None:
    ops = (ROOT / "packages" / "ops" / "README.md").read_text(encoding="utf-8")
    assert "torch(" in ops
    # assay-steps imports no executor package: it loads them through the "assay.backends"
    # entry-point group, and its README (and its error for an unknown name) says where the
    # pools and Slurm come from.
    steps = (ROOT / "packages" / "steps" / "README.md").read_text(encoding="utf-8")
    assert "assay-backends" in steps
    assert "assay.backends" in steps
