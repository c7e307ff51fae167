"""Job ids, log paths, per-run states and resources: Results, ``assay status``, ``assay logs``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, Results, explicit
from assay._cli import main
from assay._index import ResultsIndex
from assay._rows import DamagedIndexError, job_text

OPS = """
from assay_ops import operation


@operation
def grow(params, capture):
    block = bytearray(params["mb"] * 1024 * 1024)  # touched: counted in the peak RSS
    for i in range(0, len(block), 4096):
        block[i] = 1
    capture.metric("y", params["mb"])
"""


@pytest.fixture
def folder(write_module: Callable[..., Any], tmp_path: Path) -> Path:
    ops = write_module(OPS, "assay_test_visibility")
    where = tmp_path / "x"
    Experiment("grow", ops.grow, explicit([{"mb": 1}, {"mb": 64}, {"mb": 2}]), folder=where,
               progress=False).run()  # fmt: skip
    return where


def _row_of(folder: Path, mb: int) -> Any:
    return Results.load(folder).filter(mb=mb).rows[0]


def test_each_record_holds_what_its_run_used(folder: Path) -> None:
    records = {r.params["mb"]: r for r in Results.load(folder).records()}
    used = {mb: record.runtime["resources"] for mb, record in records.items()}
    for resources in used.values():
        assert set(resources) == {"cpu_s", "max_rss_bytes", "elapsed_s"}
        assert resources["elapsed_s"] >= 0
        assert resources["cpu_s"] >= 0
    # the peak RSS is the process's: the 64 MB run raised it by at least that much
    assert used[64]["max_rss_bytes"] >= 64 * 1024 * 1024


def test_status_resources_prints_the_maxima_and_suggests_mem_and_time(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(folder), "--resources"]) == 0
    out = capsys.readouterr().out
    assert "peak memory (max RSS) of a run's process:" in out
    assert "suggested for the next sweep: --mem " in out
    assert "--time 1 (1.25x the peak memory, 1.5x the longest job task, rounded up)" in out


def test_runs_without_a_job_have_no_job_columns(folder: Path) -> None:
    table = Results.load(folder).table()
    assert "job_id" not in table[0]
    assert "stdout" not in table[0]


def test_a_run_of_a_failed_job_carries_its_job_id_and_logs(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = tmp_path / "7_1_0_log.out", tmp_path / "7_1_0_log.err"
    out.write_text("started run\n")
    err.write_text("Traceback: killed\n")
    run_id = _row_of(folder, 2).run_id
    with ResultsIndex(folder) as index:
        index.mark_ended(
            [(run_id, "cancelled", "job 7_1 was cancelled", job_text("7_1", str(out), str(err)))]
        )
    table = Results.load(folder).table()
    assert list(table[0])[-3:] == ["job_id", "stdout", "stderr"]
    row = next(r for r in table if r["run_id"] == run_id)
    assert (row["job_id"], row["stdout"], row["stderr"]) == ("7_1", str(out), str(err))
    assert row["status"] == "cancelled"
    assert row["error"] == "job 7_1 was cancelled"
    assert main(["results", str(folder), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["job_id"] for r in listed} == {None, "7_1"}
    # assay logs prints both logs, or their paths
    assert main(["logs", str(folder), run_id[:8]]) == 0
    printed = capsys.readouterr().out
    assert f"==> stdout: {out} <==\nstarted run\n" in printed
    assert f"==> stderr: {err} <==\nTraceback: killed\n" in printed
    assert main(["logs", str(folder), run_id, "--path"]) == 0
    assert capsys.readouterr().out == f"stdout: {out}\nstderr: {err}\n"
    # assay status lists the run that is not done, with its job
    assert main(["status", str(folder)]) == 0
    status = capsys.readouterr().out
    assert "3 runs: pending 0, success 2, failed 0, timeout 0, cancelled 1" in status
    assert f"{run_id:<34} {'cancelled':<18} 7_1" in status


def test_logs_of_a_run_that_ran_inline_say_there_are_none(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _row_of(folder, 1).run_id
    assert main(["logs", str(folder), run_id]) == 1
    assert "has no job logs: it did not run in a batch job" in capsys.readouterr().err
    assert main(["logs", str(folder), "zzzz"]) == 1
    assert "run 'zzzz' is not in experiment folder" in capsys.readouterr().err


def test_status_all_lists_every_run_with_its_state(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(folder), "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("done (success)") == 3


def test_a_changed_job_of_a_row_is_detected_by_its_digest(folder: Path) -> None:
    run_id = _row_of(folder, 2).run_id
    with ResultsIndex(folder) as index:
        index.mark_ended([(run_id, "timeout", "time limit", job_text("9_0"))])
    db = sqlite3.connect(folder / "index.sqlite")
    with db:
        db.execute("UPDATE runs SET job = ? WHERE run_id = ?", (job_text("9_1"), run_id))
    db.close()
    with pytest.raises(DamagedIndexError, match=run_id):
        Results.load(folder)


def test_an_index_without_the_job_column_is_read_and_given_it(folder: Path) -> None:
    db = sqlite3.connect(folder / "index.sqlite")
    with db:
        db.execute("ALTER TABLE runs DROP COLUMN job")
    db.close()
    assert Results.load(folder).counts() == {"success": 3}  # read-only: as it is
    with ResultsIndex(folder) as index:  # a writer adds the column; the rows keep their digests
        index.check()
    assert Results.load(folder).counts() == {"success": 3}
