"""Sweeps that scale: the driver streams, and nothing keeps every run of a sweep in memory.

A sweep is a plan of packed run ids over points made on demand; the index tells which runs
are not complete; a ``Results`` of more than ``IN_MEMORY`` runs reads its rows when asked.
These tests pin that behaviour on small sweeps (``IN_MEMORY`` lowered where it matters), and
that the lazy paths answer exactly as the ones that hold everything.
"""

from __future__ import annotations

import gc
import json
import shutil
import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import assay._experiment
import assay._results
import assay._runs
from assay import Experiment, Results, explicit, grid, random, uniform
from assay._index import ResultsIndex
from assay._rows import Outcome, RunRow
from assay._runs import RunSpec, SweepPlan, plan
from assay._schema import INDEX_NAME
from assay._space import ParamSpace
from assay._worker import ExperimentRun

OPS = """
from assay_ops import operation


@operation
def scored(params, capture):
    if params["n"] == 3 and params["m"] == "b":
        raise ValueError("n = 3 with b is refused")
    capture.metric("loss", params["n"] / 10)
    capture.metric("loss", params["n"] / 20 + (0.5 if params["m"] == "a" else 0.25))
    capture.metric("label", params["m"] * params["n"])
    capture.artifact("note.txt", f"n={params['n']}")


@operation
def plain(params, capture):
    capture.metric("y", params["x"] * 2)
"""


@pytest.fixture
def ops(write_module: Callable[..., Any]) -> Any:
    return write_module(OPS, "assay_test_scale")


def _alive(kind: type) -> int:
    """Count the objects of ``kind`` alive now (RunRow and RunSpec are tracked by gc)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def _sweep(ops: Any, folder: Path, xs: list[int], replicates: int = 2) -> Experiment:
    return Experiment(
        "scale", ops.plain, grid(x=xs), replicates=replicates, folder=folder, progress=False
    )


# ---------------------------------------------------------------- plans


SPACES: dict[str, ParamSpace] = {
    "grid": grid(a=[1, 2.0, "x", None], b=[[1, 2], {"k": True}], c=[False]),
    "explicit": explicit([{"lr": 0.1}, {"lr": 0.01, "wd": 0.0}, {}]),
    "random": random(6, lr=uniform(0.0, 1.0)),
    "concatenated": grid(a=[1, 2]) + grid(a=[3], b=["z"]),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_a_plan_holds_the_specs_that_run_specs_name(name: str) -> None:
    space = SPACES[name]
    runs = plan(space, replicates=3, seed=7)
    expected = [RunSpec.of(p, r) for p in space.expand(7) for r in range(3)]
    assert list(runs) == expected
    assert [s.params for s in runs] == [s.params for s in expected]
    assert [runs[i] for i in range(len(runs))] == expected
    assert runs[-1] == expected[-1]
    assert runs[1:4] == expected[1:4]
    assert list(runs.run_ids()) == [s.run_id for s in expected]
    assert [runs.run_id(i) for i in range(len(runs))] == [s.run_id for s in expected]
    with pytest.raises(IndexError, match="out of range"):
        runs[len(runs)]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _JSON, max_size=4), st.integers(1, 4))
def test_run_ids_hashed_in_two_parts_are_the_canonical_run_ids(
    params: dict[str, Any], replicates: int
) -> None:
    runs = SweepPlan([params], replicates)
    assert list(runs.run_ids()) == [RunSpec.of(params, r).run_id for r in range(replicates)]


def test_without_the_two_part_encoding_the_plan_names_runs_as_run_id_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = SPACES["grid"]
    expected = [s.run_id for s in plan(space, replicates=2, seed=0)]
    monkeypatch.setattr(assay._runs, "_split_encoding_holds", lambda: False)
    fallback = plan(space, replicates=2, seed=0)
    assert list(fallback.run_ids()) == expected
    assert fallback.digest == plan(space, replicates=2, seed=0).digest


def test_the_digest_names_the_points_and_replicates_without_run_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*args: Any) -> Any:
        raise AssertionError("run ids computed")

    digest = plan(grid(a=[1, 2]), replicates=2, seed=0).digest
    with monkeypatch.context() as patched:
        patched.setattr(assay._runs, "_packed_run_ids", refused)
        assert plan(grid(a=[1, 2]), replicates=2, seed=0).digest == digest
    assert plan(grid(a=[1, 2]), replicates=3, seed=0).digest != digest
    assert plan(grid(a=[2, 1]), replicates=2, seed=0).digest != digest
    assert plan(grid(a=[1, 2.0]), replicates=2, seed=0).digest != digest
    with_ids = plan(grid(a=[1, 2]), replicates=2, seed=0)
    _ = with_ids[0]  # computes the run ids, and the digest on the way
    assert with_ids.digest == digest


def test_grid_points_are_made_on_demand_in_expand_order() -> None:
    space = grid(a=[1, 2, 3], b=["x", "y"], c=[0.5, None])
    points = space.points(0)
    expanded = space.expand(0)
    assert len(points) == len(expanded) == 12
    assert [points[i] for i in range(12)] == list(points) == expanded
    assert points[-1] == expanded[-1]
    assert points[2:5] == expanded[2:5]
    with pytest.raises(IndexError):
        points[12]


def _peak(action: Callable[[], Any]) -> tuple[Any, int]:
    """Return what ``action`` returns and the peak of the memory it allocated, in bytes."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_million_runs_are_planned_in_ten_bytes_a_run() -> None:
    space = grid(x=list(range(1000)), y=list(range(100)))
    runs, planning = _peak(lambda: plan(space, replicates=10, seed=0))
    assert planning < 1_000_000  # no spec and no dict per run: the points are made on demand
    last, naming = _peak(lambda: runs[-1])
    assert last == RunSpec.of({"x": 999, "y": 99}, 9)
    assert naming < 15_000_000  # the packed run ids (a spec per run: hundreds of megabytes)
    assert len(runs) == 1_000_000


# ---------------------------------------------------------------- results read on demand


def _finished_index(folder: Path, runs: int) -> list[RunSpec]:
    """Write an index of ``runs`` finished runs (every seventh failed), without running them."""
    specs = list(plan(grid(x=list(range(runs // 2))), replicates=2, seed=0))
    with ResultsIndex(folder) as index:
        index.plan(specs)
        index.store(
            Outcome(
                s.run_id,
                "failed" if i % 7 == 0 else "success",
                {} if i % 7 == 0 else {"y": i / 2},
                0.01,
                "ValueError: seven" if i % 7 == 0 else None,
                "h",
                None,
            )
            for i, s in enumerate(specs)
        )
    return specs


def test_results_of_a_large_folder_hold_no_row_until_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assay._results, "IN_MEMORY", 50)
    specs = _finished_index(tmp_path, 400)
    before = _alive(RunRow)
    results = Results.load(tmp_path)
    assert len(results) == 400
    assert results.counts() == {"success": 342, "failed": 58}
    assert repr(results) == "Results(400 runs: success=342, failed=58)"
    assert len(results.failed()) == 58
    assert results.param_names == ["x"]
    assert results.metric_names == ["y"]
    assert _alive(RunRow) == before  # none kept: each answer read what it needed
    rows = results.rows
    assert [r.run_id for r in rows] == [s.run_id for s in specs]
    assert _alive(RunRow) == before + 400


def test_a_small_folder_is_read_at_once_and_stays_readable_after_it_moved(
    tmp_path: Path,
) -> None:
    _finished_index(tmp_path / "a", 40)
    results = Results.load(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert len(results.rows) == 40


@pytest.fixture
def scored_folder(ops: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "exp"
    Experiment(
        "scored", ops.scored, grid(n=[1, 2, 3], m=["a", "b"]), replicates=2, folder=folder,
        progress=False,
    ).run()  # fmt: skip
    return folder


def _answers(results: Results) -> dict[str, Any]:
    """What a Results says through its public API, for comparisons."""
    run_id = next(iter(results)).run_id
    return {
        "len": len(results),
        "counts": results.counts(),
        "repr": repr(results),
        "rows": results.rows,
        "iterated": list(results),
        "names": (results.param_names, results.metric_names),
        "table": json.dumps(results.table(), sort_keys=True),
        "summary": json.dumps(results.summary("loss"), sort_keys=True),
        "summary by n": results.summary("loss", by="n"),
        "filtered": results.filter(n=2).rows,
        "predicate": results.filter(n=lambda n: n >= 2, m="a").rows,
        "filter of filter": results.filter(m="a").filter(n=1).rows,
        "failed": results.failed().rows,
        "failed counts": results.failed().counts(),
        "records": [(r.run_id, r.metrics) for r in results.records()],
        "artifact": results.artifact(run_id, "note.txt"),
        "filtered artifact": results.filter(n=1).artifact(run_id, "note.txt"),
    }


def test_a_results_read_on_demand_answers_as_one_held_in_memory(
    scored_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Results.load(scored_folder)
    monkeypatch.setattr(assay._results, "IN_MEMORY", 0)
    streamed = Results.load(scored_folder)
    assert _answers(streamed) == _answers(held)
    for results in (held, streamed):
        with pytest.raises(KeyError, match=r"no parameter 'zz'.*'m', 'n'"):
            results.filter(zz=1)
        with pytest.raises(KeyError, match="no metric 'nope'"):
            results.summary("nope")
        with pytest.raises(TypeError, match="metric 'label'"):
            results.summary("label")
        with pytest.raises(KeyError, match="is not one of these 12 runs"):
            results.artifact("0" * 20, "note.txt")
        assert len(results.filter(n=2).filter(m="b").failed()) == 0


def test_a_dataframe_and_a_plot_read_on_demand_match_those_held_in_memory(
    scored_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    held = Results.load(scored_folder)
    monkeypatch.setattr(assay._results, "IN_MEMORY", 0)
    streamed = Results.load(scored_folder)
    pandas.testing.assert_frame_equal(streamed.to_dataframe(), held.to_dataframe())
    for results, name in ((held, "held.png"), (streamed, "streamed.png")):
        results.plot("loss", x="n", hue="m", out=tmp_path / name)
        assert (tmp_path / name).is_file()
        with pytest.raises(KeyError, match=r"plot\(\): x = 'size' is not a parameter"):
            results.plot("loss", x="size")


# ---------------------------------------------------------------- the driver


def test_run_returns_its_own_runs_when_the_folder_holds_older_ones(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assay._results, "IN_MEMORY", 0)
    folder = tmp_path / "exp"
    _sweep(ops, folder, [1, 2, 3]).run()
    for _ in range(2):  # planning the new point, then resuming from the index's note
        results = _sweep(ops, folder, [2, 3, 4]).run()
        assert sorted({r.params["x"] for r in results}) == [2, 3, 4]
        assert len(results) == 6
        assert results.counts() == {"success": 6}
        assert [r.metrics["y"] for r in results.filter(x=4)] == [8, 8]
    assert sorted({r.params["x"] for r in Results.load(folder)}) == [1, 2, 3, 4]


def test_run_keeps_no_spec_and_no_row_of_its_sweep(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assay._results, "IN_MEMORY", 0)
    specs, rows = _alive(RunSpec), _alive(RunRow)
    results = _sweep(ops, tmp_path / "exp", list(range(50)), replicates=4).run()
    assert results.counts() == {"success": 200}
    assert (_alive(RunSpec), _alive(RunRow)) == (specs, rows)


def test_resuming_a_complete_sweep_neither_reads_the_cache_nor_hashes_its_runs(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "exp"
    _sweep(ops, folder, list(range(20))).run()
    again = _sweep(ops, folder, list(range(20)))

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cache or the run ids were used")

    monkeypatch.setattr(ExperimentRun, "run_many", refused)
    monkeypatch.setattr(ExperimentRun, "lookup", refused)
    monkeypatch.setattr(assay._runs, "_packed_run_ids", refused)
    assert again.run().counts() == {"success": 40}
    assert again.last_summary is not None
    assert again.last_summary.skipped == again.last_summary.planned == 40


@pytest.mark.parametrize("few", [0, 1_000])
def test_interrupted_runs_are_found_whether_the_index_or_sqlite_finds_them(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few: int
) -> None:
    monkeypatch.setattr(assay._experiment, "_FEW_UNFINISHED", few)
    folder = tmp_path / "exp"
    first = _sweep(ops, folder, list(range(10)))
    first.run()
    stopped = [first.specs[i].run_id for i in (3, 4, 17)]
    with ResultsIndex(folder, create=False) as index:
        index.mark(stopped[:2], "cancelled")
        index.mark(stopped[2:], "pending")
    again = _sweep(ops, folder, list(range(10)))
    assert again.run().counts() == {"success": 20}
    assert again.last_summary is not None
    assert (again.last_summary.skipped, again.last_summary.executed) == (17, 3)


def test_a_row_deleted_by_another_program_is_planned_again(ops: Any, tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    first = _sweep(ops, folder, list(range(5)))
    first.run()
    _sweep(ops, folder, list(range(5))).run()  # the index now notes the sweep as planned
    db = sqlite3.connect(folder / INDEX_NAME)
    with db:
        db.execute("DELETE FROM runs WHERE run_id = ?", (first.specs[6].run_id,))
    db.close()
    again = _sweep(ops, folder, list(range(5)))
    assert again.run().counts() == {"success": 10}
    assert again.last_summary is not None
    assert (again.last_summary.executed, again.last_summary.cached) == (1, 1)


def test_the_driver_leaves_no_change_to_check_behind(ops: Any, tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    _sweep(ops, folder, list(range(5))).run()
    db = sqlite3.connect(folder / INDEX_NAME)
    assert db.execute("SELECT COUNT(*) FROM runs_changed").fetchone() == (0,)
    db.close()


def test_an_index_made_before_the_change_log_has_every_row_checked_once(
    ops: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "exp"
    first = _sweep(ops, folder, list(range(5)))
    clean = {r.run_id: r.metrics for r in first.run()}
    db = sqlite3.connect(folder / INDEX_NAME)
    with db:  # as an older assay left it: no log, and a row changed since
        for name in ("runs_inserted", "runs_updated", "runs_deleted", "runs_renamed"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DROP TABLE runs_changed")
        db.execute("UPDATE runs SET metrics = '{\"y\": 1000}' WHERE seq = 2")
    db.close()
    repaired = _sweep(ops, folder, list(range(5))).run()
    assert {r.run_id: r.metrics for r in repaired} == clean
