"""``assay status --watch``: the pending runs and their latest streamed values, until done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from assay._cli import main
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import RunSpec, plan
from assay._space import grid
from assay._statuswatch import watch_runs


def _folder(tmp_path: Path) -> tuple[Path, Sequence[RunSpec]]:
    """An experiment folder of three runs: the first done, the other two pending."""
    specs = plan(grid(lr=[0.1, 0.2, 0.3]), replicates=1, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.set_meta("experiment", {"name": "demo", "operation": "mod:op"})
        index.store([_done(specs[0])])
    return tmp_path, specs


def _done(spec: RunSpec) -> Outcome:
    return Outcome(spec.run_id, "success", {"loss": 0.1}, 0.1, None, "h", None)


def _stream(folder: Path, run_id: str, name: str, value: object, step: int | None) -> None:
    run_dir = folder / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "live.jsonl", "a") as file:
        file.write(json.dumps({"name": name, "value": value, "step": step, "t": 1.0}) + "\n")


class Steps:
    """A fake ``sleep``: each call does the next thing the runs do meanwhile."""

    def __init__(self, *actions: object) -> None:
        self.actions = list(actions)
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        action = self.actions.pop(0)
        assert callable(action)
        action()


def test_the_watch_shows_the_latest_values_until_no_run_is_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, specs = _folder(tmp_path)
    running, waiting = specs[1].run_id, specs[2].run_id
    _stream(folder, running, "loss", 0.5, 0)
    _stream(folder, running, "loss", 0.25, 3)
    _stream(folder, running, "phase", "warmup", None)

    def more() -> None:
        _stream(folder, running, "loss", "nan", 4)

    def finish() -> None:
        with ResultsIndex(folder) as index:
            index.store([_done(specs[1]), _done(specs[2])])

    sleep = Steps(more, finish)
    watch_runs(folder, None, interval=0.5, sleep=sleep)
    out = capsys.readouterr().out
    assert sleep.calls == [0.5, 0.5]  # three rounds: the third found nothing pending
    first, second = out.split("3 runs: pending 2")[1:3]
    assert running in first
    assert waiting in first
    assert "0.25 @3" in first
    assert "warmup" in first
    assert "lr=0.2" in first
    assert "running" in first
    assert "pending" in first
    assert "nan @4" in second
    assert "0.25 @3" not in second
    assert out.rstrip().endswith(
        "3 runs: pending 0, success 3, failed 0, timeout 0, cancelled 0, pruned 0: no run pending"
    )


def test_the_watch_ends_at_once_when_nothing_is_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, specs = _folder(tmp_path)
    with ResultsIndex(folder) as index:
        index.store([_done(spec) for spec in specs[1:]])
    sleep = Steps()
    watch_runs(folder, None, sleep=sleep)
    assert sleep.calls == []
    assert capsys.readouterr().out.strip().endswith("no run pending")


def test_the_watch_lists_the_first_pending_runs_unless_every(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import assay._statuswatch as status

    folder, specs = _folder(tmp_path)
    monkeypatch.setattr(status, "LISTED", 1)
    watch_runs(folder, None, max_rounds=1)
    out = capsys.readouterr().out
    assert specs[1].run_id in out
    assert specs[2].run_id not in out
    assert "... and 1 run more (--all lists every run)" in out
    assert "no run pending" not in out  # stopped by max_rounds, runs still pending
    watch_runs(folder, None, every=True, max_rounds=1)
    out = capsys.readouterr().out
    assert specs[1].run_id in out
    assert specs[2].run_id in out


def test_on_a_terminal_the_table_is_redrawn_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, specs = _folder(tmp_path)
    _stream(folder, specs[1].run_id, "loss", 0.75, 2)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich takes the captured output for a terminal

    def finish() -> None:
        with ResultsIndex(folder) as index:
            index.store([_done(specs[1]), _done(specs[2])])

    watch_runs(folder, None, sleep=Steps(finish))
    out = capsys.readouterr().out
    assert "\x1b[" in out  # drawn with the terminal's control sequences
    assert "0.75 @2" in out
    assert out.rstrip().endswith("no run pending")


def test_the_command_watches_until_the_runs_end(tmp_path: Path) -> None:
    folder, specs = _folder(tmp_path)
    _stream(folder, specs[1].run_id, "loss", 0.5, 1)
    command = [
        sys.executable,
        "-m",
        "assay",
        "status",
        str(folder),
        "--watch",
        "--interval",
        "0.05",
    ]
    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # the first table is printed while the runs are pending
            seen.append(line)
            if "0.5 @1" in line:
                break
        with ResultsIndex(folder) as index:
            index.store([_done(specs[1]), _done(specs[2])])
        rest = process.stdout.read()
        assert process.wait(timeout=60) == 0
    assert "experiment 'demo': operation mod:op" in seen[0]
    assert rest.rstrip().endswith("no run pending")


def test_ctrl_c_ends_the_watch_quietly(tmp_path: Path) -> None:
    folder, specs = _folder(tmp_path)
    command = [sys.executable, "-m", "assay", "status", str(folder), "--watch", "--interval", "30"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:  # watching: the first table is out
            if specs[1].run_id in line:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "interrupted" not in err


@pytest.mark.parametrize("interval", ["0", "-2", "nan", "inf", "soon"])
def test_the_interval_must_be_seconds_above_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], interval: str
) -> None:
    folder, _ = _folder(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["status", str(folder), "--watch", "--interval", interval])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--interval: {interval!r}: expected a number of seconds > 0" in err


def test_the_interval_needs_the_watch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = _folder(tmp_path)
    assert main(["status", str(folder), "--interval", "1"]) == 1
    assert "--interval 1.0: only with --watch" in capsys.readouterr().err
