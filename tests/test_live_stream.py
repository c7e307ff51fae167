"""Live metrics: a run's stream and prune marker, the driver's follower and live session."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import assay._live as live
from assay._follow import Follower, LivePoint, LiveSession, write_marker
from assay._live import RunStream, live_channel, register
from assay._median import MedianRule

_FORK = multiprocessing.get_context("fork")


class Recorder:
    """A pruner that notes what it hears and prunes the runs it is told to."""

    def __init__(self, prune: frozenset[str] = frozenset()) -> None:
        self.prune = prune
        self.reports: list[tuple[str, str, float, int | None]] = []
        self.ended: list[str] = []
        self.asked: list[str] = []

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        self.reports.append((run_id, name, value, step))

    def should_prune(self, run_id: str) -> bool:
        self.asked.append(run_id)
        return run_id in self.prune

    def finished(self, run_id: str) -> None:
        self.ended.append(run_id)


def _lines(path: Path) -> list[dict[str, Any]]:
    """Return the values a stream holds (not its closing line)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if "end" not in line]


def _append(runs: Path, run_id: str, text: str) -> None:
    """Append to a run's stream as another process would (not through this process's stream)."""
    (runs / run_id).mkdir(parents=True, exist_ok=True)
    with open(runs / run_id / "live.jsonl", "a") as file:
        file.write(text)


def _line(name: str, value: Any, step: int | None) -> str:
    return json.dumps({"name": name, "value": value, "step": step, "t": 1.5}) + "\n"


# ------------------------------------------------------------------ the worker's stream


def test_a_stream_holds_one_line_per_value_in_order(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    with RunStream(str(run_dir), "r1") as stream:
        assert not run_dir.exists()  # nothing made until there is something to write
        stream.report("loss", 0.5, 0)
        stream.report("loss", 0.25, 1)
        stream.report("note", "warm", 2)
        stream.report("final", 0.1, None)  # a result, not a curve: read from the record
    lines = _lines(run_dir / "live.jsonl")
    assert [(x["name"], x["value"], x["step"]) for x in lines] == [
        ("loss", 0.5, 0),
        ("loss", 0.25, 1),
        ("note", "warm", 2),
    ]
    assert all(isinstance(x["t"], float) for x in lines)
    # the last line says the run ended
    assert json.loads((run_dir / "live.jsonl").read_text().splitlines()[-1])["end"] is True


def test_a_run_recording_no_step_writes_no_stream(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    with RunStream(str(run_dir), "r1") as stream:
        stream.report("loss", 0.5, None)
    assert not run_dir.exists()


def test_values_are_streamed_as_plain_numbers_and_strings(tmp_path: Path) -> None:
    run_dir = tmp_path / "r1"
    with RunStream(str(run_dir), "r1") as stream:
        for value in (
            np.float32(0.5),
            np.int64(7),
            np.bool_(True),
            True,
            float("nan"),
            float("-inf"),
            np.float64("inf"),
            Fraction(1, 4),
            np.array(2.5),
            np.str_("adam"),
        ):
            stream.report("m", value, 0)
        for skipped in (np.arange(3), [1, 2], {"a": 1}, 1 + 2j, b"raw"):
            stream.report("m", skipped, 0)
    values = [x["value"] for x in _lines(run_dir / "live.jsonl")]
    assert values == [0.5, 7, 1, 1, "nan", "-inf", "inf", 0.25, 2.5, "adam"]
    assert [type(v) for v in values[:3]] == [float, int, int]


def test_the_stream_stays_open_and_reopens_after_close(tmp_path: Path) -> None:
    stream = RunStream(str(tmp_path / "r1"), "r1")
    stream.report("loss", 1.0, 0)
    stream.report("loss", 2.0, 1)
    first = stream._fd
    assert first is not None
    assert stream._fd == first
    stream.close()
    stream.close()  # closing twice is fine
    stream.report("loss", 3.0, 2)
    stream.close()
    assert [x["value"] for x in _lines(tmp_path / "r1" / "live.jsonl")] == [1.0, 2.0, 3.0]


def test_a_stream_that_cannot_be_written_raises(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    stream = RunStream(str(tmp_path / "runs" / "r1"), "r1")
    with pytest.raises(NotADirectoryError):
        stream.report("loss", 1.0, 0)


def test_a_run_sees_its_marker_and_stays_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MARKER_PERIOD", 0.0)  # look every time
    run_dir = tmp_path / "runs" / "r1"
    stream = RunStream(str(run_dir), "r1")
    assert stream.should_prune() is False
    write_marker(run_dir)
    assert sorted(os.listdir(run_dir)) == ["prune"]  # no temporary file left beside it
    assert stream.should_prune() is True
    (run_dir / "prune").unlink()
    assert stream.should_prune() is True  # once told, the run stops


def test_live_channel_is_the_stream_of_the_run_in_its_folder(tmp_path: Path) -> None:
    assert live_channel(None, "r1") is None
    stream = live_channel(str(tmp_path), "r1")
    assert stream is not None
    assert (stream.run_id, stream.path) == ("r1", str(tmp_path / "r1" / "live.jsonl"))


# ------------------------------------------------------------------ in-process deciders


def test_a_registered_decider_hears_the_runs_of_its_folder_only(tmp_path: Path) -> None:
    decider = Recorder(prune=frozenset({"r1"}))
    mine, other = tmp_path / "exp" / "runs", tmp_path / "other" / "runs"
    with register(str(mine), decider):
        stream = RunStream(str(mine / "r1"), "r1")
        stream.report("loss", 0.5, 3)
        stream.report("note", "text", 4)  # not a number: streamed, not decided on
        assert stream.should_prune() is True
        elsewhere = RunStream(str(other / "r1"), "r1")
        elsewhere.report("loss", 9.0, 0)
        assert elsewhere.should_prune() is False
        with (
            pytest.raises(ValueError, match="already has a decider"),
            register(str(mine), Recorder()),
        ):
            pass
    assert decider.reports == [("r1", "loss", 0.5, 3)]
    assert decider.asked == ["r1"]
    with register(str(mine), Recorder()):  # free again once the first block ended
        pass
    assert len(_lines(mine / "r1" / "live.jsonl")) == 2  # the stream is written all the same


def _child_asks(runs: str, parent_stream: RunStream, answers: Any) -> None:
    own = RunStream(os.path.join(runs, "r2"), "r2")
    own.report("loss", 1.0, 0)
    answers.put((own.should_prune(), parent_stream.should_prune()))


def test_a_forked_child_reads_the_marker_not_its_parents_decider(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    decider = Recorder(prune=frozenset({"r1", "r2"}))
    answers = _FORK.SimpleQueue()
    with register(runs, decider):
        parent_stream = RunStream(os.path.join(runs, "r1"), "r1")
        # a stream made in the parent, used in the child, does not reach the decider either
        process = _FORK.Process(target=_child_asks, args=(runs, parent_stream, answers))
        process.start()
        process.join()
        assert process.exitcode == 0
        assert answers.get() == (False, False)  # no markers: both keep running
        assert decider.reports == []
        assert decider.asked == []
        write_marker(os.path.join(runs, "r2"))
        process = _FORK.Process(target=_child_asks, args=(runs, parent_stream, answers))
        process.start()
        process.join()
        assert answers.get() == (True, False)
        assert parent_stream.should_prune() is True  # in the parent: asks its decider


# ------------------------------------------------------------------ the driver's follower


def test_a_follower_reads_what_is_new_whole_lines_only(tmp_path: Path) -> None:
    follower = Follower(tmp_path)
    assert follower.poll(["r1"]) == []  # no run folder yet: nothing, no error
    _append(tmp_path, "r1", _line("loss", 0.5, 0) + _line("loss", "nan", 1)[:10])
    points = follower.poll(["r1"])
    assert points == [LivePoint("r1", "loss", 0.5, 0, 1.5)]
    assert follower.poll(["r1"]) == []  # the partial line is not read twice
    _append(tmp_path, "r1", _line("loss", "nan", 1)[10:] + _line("acc", "top", None))
    points = follower.poll(["r1"])
    assert [(p.name, p.step) for p in points] == [("loss", 1), ("acc", None)]
    assert str(points[0].value) == "nan"
    assert isinstance(points[0].value, float)
    assert points[1].value == "top"
    assert follower.corrupt == 0


def test_a_follower_skips_and_counts_damaged_lines(tmp_path: Path) -> None:
    follower = Follower(tmp_path)
    damaged = [
        "not json\n",
        "[1, 2]\n",
        '{"name": "loss", "value": [1], "step": 0, "t": 1}\n',
        '{"name": "loss", "value": 1, "step": true, "t": 1}\n',
        '{"name": "loss", "value": 1, "step": 0}\n',
        '{"value": 1, "step": 0, "t": 1}\n',
    ]
    _append(tmp_path, "r1", "".join(damaged) + _line("loss", 2, 5))
    assert follower.poll(["r1"]) == [LivePoint("r1", "loss", 2, 5, 1.5)]
    assert follower.corrupt == len(damaged)


def test_a_follower_rereads_a_stream_that_was_replaced(tmp_path: Path) -> None:
    follower = Follower(tmp_path)
    _append(tmp_path, "r1", _line("loss", 1, 0) + _line("loss", 2, 1))
    assert len(follower.poll(["r1"])) == 2
    (tmp_path / "r1" / "live.jsonl").write_text(_line("loss", 9, 0))  # a new attempt
    assert [p.value for p in follower.poll(["r1"])] == [9]


def test_a_follower_feeds_the_pruner_and_marks_the_runs_it_stops(tmp_path: Path) -> None:
    pruner = Recorder(prune=frozenset({"bad"}))
    follower = Follower(tmp_path, pruner)
    _append(tmp_path, "good", _line("loss", 0.1, 0) + _line("tag", "x", 0))
    _append(tmp_path, "bad", _line("loss", "inf", 0))
    follower.poll(["good", "bad"])
    assert pruner.reports == [("good", "loss", 0.1, 0), ("bad", "loss", float("inf"), 0)]
    assert (tmp_path / "bad" / "prune").exists()
    assert not (tmp_path / "good" / "prune").exists()
    _append(tmp_path, "bad", _line("loss", 0.5, 1))
    follower.poll(["good", "bad"])  # "good" has nothing new: not asked again
    assert pruner.asked == ["good", "bad"]  # "bad" is marked already: not asked again


# ------------------------------------------------------------------ the live session


def test_a_session_stops_a_run_in_another_process(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    rule = MedianRule("loss", n_startup_runs=1)
    worker = textwrap.dedent(
        f"""
        import sys, time
        from assay._live import RunStream
        with RunStream({str(runs / "slow")!r}, "slow") as stream:
            for step in range(3000):
                stream.report("loss", 1.0, step)
                if stream.should_prune():
                    print(step)
                    sys.exit(3)
                time.sleep(0.01)
        """
    )
    with LiveSession(runs, rule, out_of_process=True, interval=0.02) as session:
        session.follow(["fast", "slow"])
        with live_channel(str(runs), "fast") as stream:  # type: ignore[union-attr]
            for step in range(3000):
                stream.report("loss", 0.1, step)
        session.ended(["fast"])
        done = subprocess.run(
            [sys.executable, "-c", worker], capture_output=True, text=True, timeout=120
        )
        session.ended(["slow"])
    assert done.returncode == 3, done.stderr
    assert (runs / "slow" / "prune").exists()
    assert not (runs / "fast" / "prune").exists()  # a run of this process is asked directly
    assert rule.should_prune("slow")
    assert not rule.should_prune("fast")
    assert "assay-live" not in {thread.name for thread in threading.enumerate()}


def test_values_of_runs_in_this_process_reach_the_pruner_once(tmp_path: Path) -> None:
    pruner = Recorder()
    with LiveSession(tmp_path, pruner, out_of_process=True, interval=0.01) as session:
        session.follow(["here", "there"])
        with live_channel(str(tmp_path), "here") as stream:  # type: ignore[union-attr]
            for step in range(50):
                stream.report("loss", float(step), step)
        _append(tmp_path, "there", _line("loss", 7.0, 0))
        session.ended(["here", "there"])
    assert sorted(r for r in pruner.reports if r[0] == "here") == [
        ("here", "loss", float(step), step) for step in range(50)
    ]
    assert [r for r in pruner.reports if r[0] == "there"] == [("there", "loss", 7.0, 0)]


def test_ended_reads_a_run_to_its_end_before_telling_the_pruner(tmp_path: Path) -> None:
    events: list[str] = []

    class Ordered(Recorder):
        def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
            events.append(f"report {run_id} {step}")

        def finished(self, run_id: str) -> None:
            events.append(f"finished {run_id}")

    # a poll interval longer than the test: only ended() and the exit read the streams
    with LiveSession(tmp_path, Ordered(), out_of_process=True, interval=3600) as session:
        session.follow(["r1"])
        _append(tmp_path, "r1", _line("loss", 1.0, 0) + _line("loss", 0.5, 1))
        session.ended(["r1"])
        assert events == ["report r1 0", "report r1 1", "finished r1"]
        session.follow(["r2"])
        _append(tmp_path, "r2", _line("loss", 1.0, 0))
    assert events[-1] == "report r2 0"  # the last read on exit: nothing lost


def test_follow_removes_a_previous_attempts_stream_and_marker(tmp_path: Path) -> None:
    _append(tmp_path, "r1", _line("loss", 5.0, 0))
    write_marker(tmp_path / "r1")
    pruner = Recorder()
    with LiveSession(tmp_path, pruner, out_of_process=True, interval=3600) as session:
        session.follow(["r1"])
        assert sorted(os.listdir(tmp_path / "r1")) == []
        _append(tmp_path, "r1", _line("loss", 1.0, 0))
    assert pruner.reports == [("r1", "loss", 1.0, 0)]


def test_a_session_in_process_only_starts_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    with LiveSession(tmp_path, Recorder(prune=frozenset({"r1"})), out_of_process=False):
        assert threading.active_count() == before
        stream = live_channel(str(tmp_path), "r1")
        assert stream is not None
        assert stream.should_prune() is True
    assert RunStream(str(tmp_path / "r2"), "r2").should_prune() is False  # unregistered


def test_a_failing_pruner_does_not_stop_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Recorder):
        def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
            raise RuntimeError("broken pruner")

    with LiveSession(tmp_path, Broken(), out_of_process=True, interval=3600) as session:
        session.follow(["r1"])
        _append(tmp_path, "r1", _line("loss", 1.0, 0))
    assert "live metrics failed" in caplog.text


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf")])
def test_a_session_interval_must_be_positive(tmp_path: Path, interval: float) -> None:
    with pytest.raises(ValueError, match=r"interval=.*seconds > 0"):
        LiveSession(tmp_path, Recorder(), True, interval=interval)
