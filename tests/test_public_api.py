"""``import assay`` gives the user's API; every layer keeps its whole API; moved names warn."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings

import pytest

import assay
from assay import _moved
from tests._workspace import LAYERS, ROOT

#: What a researcher writes to run sweeps. A name added to (or dropped from) the API is a
#: decision: it changes this list.
CURATED = [
    # the experiment layer
    "Distribution",
    "Experiment",
    "FolderConflictError",
    "InfrastructureError",
    "MedianRule",
    "ParamSpace",
    "ReproduceReport",
    "Results",
    "RunRow",
    "RunSummary",
    "choice",
    "explicit",
    "grid",
    "loguniform",
    "randint",
    "random",
    "reproduce",
    "search",
    "uniform",
    # the layers
    "param_scope",
    "auto_param",
    "FrozenContext",
    "operation",
    "SeedBundle",
    "Capture",
    "Runtime",
    "RunRecord",
    "Step",
    "Chain",
    "Cached",
    "CodeChangedError",
    "ThreadPool",
    "ProcessPool",
    "LocalProcess",
    "Slurm",
    "Auto",
]
LAYER_MODULES = [f"assay_{layer}" for layer in LAYERS]


def test_all_and_dir_list_exactly_the_curated_names() -> None:
    assert assay.__all__ == sorted(CURATED)
    assert dir(assay) == sorted([*CURATED, "__version__"])


def test_every_curated_name_resolves_without_a_warning_and_star_import_gives_them() -> None:
    # In a fresh process, so that each name goes through the first lookup.
    code = (
        "import assay\n"
        "values = [getattr(assay, name) for name in assay.__all__]\n"
        "assert all(value is not None for value in values)\n"
        "namespace = {}\n"
        "exec('from assay import *', namespace)\n"
        "assert set(assay.__all__) <= set(namespace), set(assay.__all__) - set(namespace)\n"
    )
    run = [sys.executable, "-W", "error::DeprecationWarning", "-c", code]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", CURATED)
def test_a_curated_name_is_the_object_of_its_home(name: str) -> None:
    value = getattr(assay, name)
    homes = [module for module in LAYER_MODULES if name in importlib.import_module(module).__all__]
    if homes:  # one of the layers' names: the very object of that layer
        (home,) = homes
        assert value is getattr(importlib.import_module(home), name)
    else:  # the experiment layer's own
        assert value.__module__.startswith("assay._"), value.__module__


@pytest.mark.parametrize("module", LAYER_MODULES)
def test_each_layer_keeps_its_whole_api(module: str) -> None:
    layer = importlib.import_module(module)
    for name in layer.__all__:
        assert getattr(layer, name) is not None, f"{module}.{name}"
    moved_here = {name for name, home in _moved.MOVED.items() if home == module}
    assert moved_here <= set(layer.__all__), f"moved names {moved_here - set(layer.__all__)}"


def test_every_name_re_exported_up_to_0_1_is_curated_or_moved() -> None:
    # The layers' names that assay re-exported before its API was curated: each is either in
    # the API or resolves with a warning, so no user code breaks without warning.
    before = {
        "assay_scope": 14,
        "assay_context": 12,
        "assay_ops": 23,
        "assay_steps": 24,
        "assay_backends": 16,
    }
    for module, count in before.items():
        kept = [name for name in CURATED if name in importlib.import_module(module).__all__]
        moved = [name for name, home in _moved.MOVED.items() if home == module]
        assert len(kept) + len(moved) == count, module
    assert not set(_moved.MOVED) & set(CURATED)


@pytest.mark.parametrize("name", sorted(_moved.MOVED))
def test_a_name_that_left_the_api_still_resolves_with_a_warning_naming_its_layer(
    name: str,
) -> None:
    layer = importlib.import_module(_moved.MOVED[name])
    message = rf"^assay\.{name} is deprecated; import it from {layer.__name__}$"
    with pytest.warns(DeprecationWarning, match=message) as caught:
        value = getattr(assay, name)
    assert value is getattr(layer, name)
    assert caught[0].filename == __file__, "the warning points at the code that named it"


def test_from_assay_import_a_moved_name_warns_too() -> None:
    import assay_steps

    with pytest.warns(DeprecationWarning, match=r"assay\.Backend is deprecated.*assay_steps"):
        from assay import Backend
    assert Backend is assay_steps.Backend


def test_a_moved_name_warns_on_every_use() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assay.LookupHandle  # noqa: B018
        assay.LookupHandle  # noqa: B018
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "LookupHandle" not in dir(assay)


@pytest.mark.parametrize(("name", "module"), [("ResultsIndex", "_index"), ("RunSpec", "_runs")])
def test_the_experiment_layers_internals_warn_that_they_are_internal(
    name: str, module: str
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"assay\.{name} is deprecated; it is internal"):
        value = getattr(assay, name)
    assert value is getattr(importlib.import_module(f"assay.{module}"), name)


def test_type_checkers_see_the_curated_names() -> None:
    # The imports under TYPE_CHECKING are what mypy and the API reference see: the same list.
    tree = ast.parse((ROOT / "src" / "assay" / "__init__.py").read_text(encoding="utf-8"))
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]
    seen = [
        alias.asname or alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    assert sorted(seen) == sorted(CURATED)


def test_the_api_reference_page_shows_every_curated_name() -> None:
    page = (ROOT / "docs" / "api" / "assay.md").read_text(encoding="utf-8")
    missing = [
        name
        for name in CURATED
        if f"        - {name}\n" not in page and f"[`{name}`][assay_" not in page
    ]
    assert not missing, f"docs/api/assay.md does not show {missing}"
