"""An experiment notices an edit of a helper its operation calls, in another module, and says
which function changed, with its file and line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from assay_ops import code_hash

from assay import Experiment, grid
from assay._identity import _CODE_META, CodeChangedError
from assay._index import ResultsIndex

HELPERS = """
def scale(x):
    return x * {factor}
"""

OPS = """
from assay_ops import operation

import {helpers}


@operation
def square(params, capture):
    capture.metric("value", {helpers}.scale(params["x"] ** 2))
"""


@pytest.fixture
def project(
    write_module: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> Callable[[int], tuple[ModuleType, Any]]:
    """Write the helper module with ``factor``, and the operation module importing it."""
    # modules are rewritten in place: a .pyc of the same second and size would be stale
    monkeypatch.setattr(sys, "dont_write_bytecode", True)

    def write(factor: int) -> tuple[ModuleType, Any]:
        helpers = write_module(HELPERS.format(factor=factor), "code_change_helpers")
        ops = write_module(OPS.format(helpers=helpers.__name__), "code_change_ops")
        return helpers, ops.square  # the operation module imported afresh sees the edit

    return write


def _experiment(tmp_path: Path, operation: Any) -> Experiment:
    return Experiment("code", operation, grid(x=[1, 2]), folder=tmp_path / "runs", progress=False)


def _values(experiment: Experiment, **kwargs: Any) -> list[Any]:
    return [r.metrics["value"] for r in experiment.run(**kwargs)]


def test_an_edited_helper_in_another_module_is_named_with_file_and_line(
    tmp_path: Path, project: Callable[[int], tuple[ModuleType, Any]]
) -> None:
    _, square = project(1)
    assert _values(_experiment(tmp_path, square)) == [1, 4]

    helpers, square = project(10)
    with pytest.raises(CodeChangedError) as caught:
        _experiment(tmp_path, square).run()
    what = caught.value.what
    assert what.startswith(f"operation {square.ref} changed since 2 runs were recorded")
    assert what.endswith(f"; changed: {helpers.__name__}.scale ({helpers.__file__}:2)")
    assert "\n" not in what  # the command line prints it as one line

    assert _values(_experiment(tmp_path, square), on_code_change="rerun") == [10, 40]


def test_a_folder_without_the_old_fingerprint_says_so(
    tmp_path: Path, project: Callable[[int], tuple[ModuleType, Any]]
) -> None:
    _, square = project(1)
    _experiment(tmp_path, square).run()
    with ResultsIndex(tmp_path / "runs") as index:  # as written by an older version
        index.set_meta(_CODE_META + square.code_hash, None)

    _, square = project(2)
    with pytest.raises(CodeChangedError, match="what changed is not known") as caught:
        _experiment(tmp_path, square).run()
    assert "changed: " not in caught.value.what


def test_runs_of_an_older_body_only_hash_say_the_body_is_unchanged(
    tmp_path: Path, project: Callable[[int], tuple[ModuleType, Any]]
) -> None:
    _, square = project(1)
    _experiment(tmp_path, square).run()
    legacy = code_hash(square.func)  # what an older assay recorded: the body alone
    assert legacy != square.code_hash
    with ResultsIndex(tmp_path / "runs") as index:
        index.set_meta(_CODE_META + square.code_hash, None)
        # an older assay wrote no row digests either
        index._db.execute("UPDATE runs SET code_hash = ?, digest = NULL", (legacy,))
        index._db.commit()
    with pytest.raises(CodeChangedError, match="body is unchanged") as caught:
        _experiment(tmp_path, square).run()
    assert "older version of assay" in caught.value.what
    assert _values(_experiment(tmp_path, square), on_code_change="keep") == [1, 4]
    assert _values(_experiment(tmp_path, square)) == [1, 4]  # the choice is remembered
