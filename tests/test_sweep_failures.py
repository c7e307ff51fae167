"""The failure policy of a sweep: go on past failures, summarise them, stop at max_failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, Results, explicit
from assay._cli import main
from assay._index import ResultsIndex
from assay._rows import job_text

OPS = """
from assay_ops import operation


@operation
def maybe(params, capture):
    if params["i"] % 3 == 0:
        raise ValueError(f"run {params['i']} refuses")
    capture.metric("y", params["i"])
"""


@pytest.fixture
def ops(write_module: Callable[..., Any]) -> Any:
    return write_module(OPS, "assay_test_failures")


def _experiment(ops: Any, folder: Path, n: int = 12, **backend: Any) -> Experiment:
    return Experiment(
        "fails",
        ops.maybe,
        explicit([{"i": i} for i in range(n)]),
        folder=folder,
        progress=False,
        backend=backend or None,
    )


def test_a_sweep_goes_on_past_failures_and_summarises_them(ops: Any, tmp_path: Path) -> None:
    experiment = _experiment(ops, tmp_path / "x")
    results = experiment.run()
    assert results.counts() == {"success": 8, "failed": 4}
    summary = experiment.last_summary
    assert summary is not None
    assert summary.failed == 4
    assert summary.stopped is None
    lines = summary.report("fails")
    assert lines[0] == "fails: 4 runs did not succeed: 4 failed"
    # the first errors, each with its run id, in planning order
    first = results.failed().rows[:3]
    for line, row in zip(lines[1:4], first, strict=True):
        assert line == f"  run {row.run_id} (failed): ValueError: run {row.params['i']} refuses"
    assert lines[-1] == f"  list them all: assay results {tmp_path / 'x'} --status failed"


def test_max_failures_stops_inline_at_the_limit_and_cancels_the_rest(
    ops: Any, tmp_path: Path
) -> None:
    experiment = _experiment(ops, tmp_path / "x")
    results = experiment.run(max_failures=2)
    # runs 0 and 3 fail: the sweep stops right there; runs 4.. never ran
    assert results.counts() == {"success": 2, "failed": 2, "cancelled": 8}
    cancelled = results.with_status("cancelled").rows
    assert [row.params["i"] for row in cancelled] == list(range(4, 12))
    assert all("max_failures=2" in (row.error or "") for row in cancelled)
    summary = experiment.last_summary
    assert summary is not None
    assert summary.stopped is not None
    assert "stopped early" in "\n".join(summary.report("fails"))
    # a plain rerun resumes the cancelled runs (failed ones are kept)
    again = experiment.run()
    assert again.counts() == {"success": 8, "failed": 4}


def test_max_failures_on_a_pool_stops_after_the_chunk_that_reached_it(
    ops: Any, tmp_path: Path
) -> None:
    experiment = _experiment(ops, tmp_path / "x", n=200, backend="ThreadPool", max_jobs=2)
    results = experiment.run(max_failures=1)
    counts = results.counts()
    assert counts["failed"] >= 1
    assert counts.get("cancelled", 0) > 100  # stopped early, the rest left for a rerun
    assert sum(counts.values()) == 200


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_failures_must_be_a_positive_int(ops: Any, tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"max_failures = .*expected an int >= 1"):
        _experiment(ops, tmp_path / "x").run(max_failures=bad)
    assert not (tmp_path / "x" / "index.sqlite").exists()  # refused before anything ran


def test_timeout_is_a_status_kept_like_failed_and_retried_with_retry_failed(
    ops: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "x"
    experiment = _experiment(ops, folder, n=4)
    experiment.run()
    run_id = Results.load(folder).filter(i=1).rows[0].run_id
    job = job_text("41_2", "/logs/41_2_0_log.out", "/logs/41_2_0_log.err")
    message = "job 41_2 reached its time limit of 1 min (TIMEOUT)"
    with ResultsIndex(folder) as index:
        index.mark_ended([(run_id, "timeout", message, job)])
    results = Results.load(folder)
    assert results.counts() == {"success": 1, "failed": 2, "timeout": 1}
    row = results.with_status("timeout").rows[0]
    assert (row.error, row.job_id, row.stdout) == (message, "41_2", "/logs/41_2_0_log.out")
    assert row.metrics == {}
    assert row.duration is None
    # kept by a plain run, like a failed run
    assert experiment.run().counts() == {"success": 1, "failed": 2, "timeout": 1}
    # run again with retry_failed, like a failed run
    assert experiment.run(retry_failed=True).counts() == {"success": 2, "failed": 2}


def test_the_command_prints_the_summary_and_exits_1_on_failures(
    ops: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "x")
    argv = ["run", f"{ops.__name__}:maybe", "--grid", "i=0,1,2,3,4,5", "--folder", folder]
    assert main([*argv, "--max-failures", "1"]) == 1
    err = capsys.readouterr().err
    assert "maybe: 1 run did not succeed" not in err  # the cancelled runs count too
    assert "1 failed, 5 cancelled" in err
    assert "stopped early: not run: the sweep stopped after 1 run failed" in err
    assert f"list them all: assay results {folder} --status failed,cancelled" in err
    assert main(["results", folder, "--status", "cancelled", "--json"]) == 0
    listed = capsys.readouterr().out
    assert listed.count('"status": "cancelled"') == 5
    assert main([*argv]) == 1  # the rerun completes the cancelled runs; 0 and 3 still fail
    assert Results.load(folder).counts() == {"success": 4, "failed": 2}


def test_results_status_refuses_an_unknown_status(
    ops: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "x")
    _experiment(ops, tmp_path / "x", n=2).run()
    assert main(["results", folder, "--status", "faild"]) == 1
    assert "--status 'faild': expected one of pending, success, failed, timeout" in (
        capsys.readouterr().err
    )
    with pytest.raises(ValueError, match="with_status"):
        Results.load(folder).with_status("done")
