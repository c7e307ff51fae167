from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from assay_backends import ProcessPool, ThreadPool
from assay_backends import _progress as progress_module
from assay_steps import Backend, BatchProtocolError, Step
from backends_testkit import Terminal

# Steps of this module travel to worker processes by value, as if defined in a notebook.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class WhereAndWhen(Step):
    """Records which process and thread computed an item, and when."""

    pause: float = 0.0

    def _run(self, value: int) -> dict[str, Any]:
        start = time.monotonic()
        time.sleep(self.pause)
        return {
            "value": value,
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "start": start,
            "end": time.monotonic(),
        }


class Fails(Step):
    def _run(self, value: int) -> int:
        if value == 3:
            raise ValueError(f"item {value} is bad")
        return value


class Counter(Step):
    """Appends a line to a file per computation, to count computations across processes."""

    log: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        # A control file the test creates and deletes: not an input of the results (a Path
        # field is otherwise keyed by the content of its file).
        return ["log"]

    def _run(self, value: int) -> int:
        with self.log.open("a") as handle:
            handle.write(f"{value}\n")
        return value * 10


class BrokenBatch(Step):
    def _run_batch(self, values: Any) -> Any:
        yield from list(values)[:-1]  # one result short


POOLS = ["ThreadPool", "ProcessPool"]


def _overlap(records: list[dict[str, Any]]) -> bool:
    spans = sorted((r["start"], r["end"]) for r in records)
    return any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans))


@pytest.mark.parametrize("backend", POOLS)
def test_results_come_in_input_order_and_are_cached(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "computed.txt"
    step = Counter(log=log, infra={"backend": backend, "folder": tmp_path / "cache"})
    values = list(range(20))
    assert list(step.run_many(values)) == [10 * v for v in values]
    assert sorted(int(line) for line in log.read_text().split()) == values
    assert all(step.lookup(v).status == "success" for v in values)
    # A rerun, even from a new instance, reuses the cache: nothing is computed again.
    again = Counter(log=log, infra={"backend": backend, "folder": tmp_path / "cache"})
    assert list(again.run_many(values)) == [10 * v for v in values]
    assert len(log.read_text().split()) == len(values)


@pytest.mark.parametrize("backend", POOLS)
def test_two_workers_run_items_at_the_same_time(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    step = WhereAndWhen(pause=0.3, infra={"backend": backend, "folder": tmp_path})
    records = list(step.run_many(range(4)))
    assert [r["value"] for r in records] == [0, 1, 2, 3]
    assert _overlap(records), "with 2 cores two items must run at once (exca runs one)"
    key = "pid" if backend == "ProcessPool" else "thread"
    workers = {r[key] for r in records}
    assert len(workers) == 2
    if backend == "ProcessPool":
        assert os.getpid() not in workers
    else:
        assert all(r["pid"] == os.getpid() for r in records)


@pytest.mark.parametrize("backend", POOLS)
def test_max_jobs_one_runs_inline_in_the_caller(backend: str, tmp_path: Path) -> None:
    step = WhereAndWhen(infra={"backend": backend, "folder": tmp_path, "max_jobs": 1})
    records = list(step.run_many(range(3)))
    assert {(r["pid"], r["thread"]) for r in records} == {(os.getpid(), threading.get_ident())}


@pytest.mark.parametrize("backend", POOLS)
def test_worker_count_is_capped_by_max_jobs(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    step = WhereAndWhen(pause=0.05, infra={"backend": backend, "folder": tmp_path, "max_jobs": 2})
    key = "pid" if backend == "ProcessPool" else "thread"
    assert len({r[key] for r in step.run_many(range(12))}) <= 2


@pytest.mark.parametrize("backend", POOLS)
def test_an_error_in_one_item_is_cached_with_its_traceback(
    backend: str, tmp_path: Path, notes_of: Callable[[BaseException], str]
) -> None:
    step = Fails(infra={"backend": backend, "folder": tmp_path})
    with pytest.raises(ValueError, match="item 3 is bad") as raised:
        step.run_many(range(6))  # the run fails at once (as in exca), the other items done
    assert "_run" in notes_of(raised.value)
    assert step.lookup(3).status == "error"
    assert [step.lookup(v).status for v in (0, 1, 2, 4, 5)] == ["success"] * 5


@pytest.mark.parametrize("backend", POOLS)
def test_a_broken_batch_protocol_propagates(backend: str, tmp_path: Path) -> None:
    step = BrokenBatch(infra={"backend": backend, "folder": tmp_path})
    with pytest.raises(BatchProtocolError):
        list(step.run_many(range(8)))


class DiesWhileFlag(Step):
    """Ends its worker process at one input while a flag file exists (as a crash would)."""

    at: int
    flag: Path

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["flag"]

    def _run(self, value: int) -> int:
        if value == self.at and self.flag.exists():
            os._exit(9)
        return value


def test_a_dead_worker_process_is_a_job_error_naming_the_step(tmp_path: Path) -> None:
    from assay_backends import JobError

    # The broken pool terminates its other worker too, perhaps while it held a claim: the
    # claim of a dead process on this host is stale at once, so the rerun computes its items.
    flag = tmp_path / "crash"
    flag.touch()
    step = DiesWhileFlag(at=3, flag=flag, infra=ProcessPool(folder=tmp_path / "c", max_jobs=2))
    with pytest.raises(JobError, match="DiesWhileFlag") as raised:
        step.run_many(range(6))
    assert "run again" in str(raised.value)
    assert step.lookup(3).status != "error"  # the death is not the item's error
    flag.unlink()
    assert list(step.run_many(range(6))) == list(range(6))


@pytest.mark.parametrize("backend", POOLS)
def test_force_mode_recomputes_and_the_caller_sees_the_new_results(
    backend: str, tmp_path: Path
) -> None:
    first = list(WhereAndWhen(infra={"backend": backend, "folder": tmp_path}).run_many(range(4)))
    forced = WhereAndWhen(infra={"backend": backend, "folder": tmp_path, "mode": "force"})
    second = list(forced.run_many(range(4)))
    assert [r["start"] for r in second] != [r["start"] for r in first]
    # The same instance then serves what it just wrote, not what it had read before.
    assert list(forced.run_many(range(4))) == second


@pytest.mark.parametrize("backend", POOLS)
def test_dict_infra_validates_to_the_backend_class(backend: str) -> None:
    parsed = Backend.model_validate({"backend": backend, "folder": "somewhere", "max_jobs": 3})
    assert type(parsed).__name__ == backend
    assert isinstance(parsed, ThreadPool | ProcessPool)
    assert parsed.model_dump()["backend"] == backend
    assert Backend.model_validate(parsed.model_dump()) == parsed


@pytest.mark.parametrize("value", [0, -1])
def test_bad_max_jobs_is_rejected_naming_the_field(value: int) -> None:
    with pytest.raises(ValueError, match="max_jobs"):
        ThreadPool(max_jobs=value)


def test_progress_bar_is_drawn_on_a_terminal_and_switchable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rich")
    terminal = Terminal()
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    list(WhereAndWhen(infra={"backend": "ThreadPool", "folder": tmp_path / "a"}).run_many(range(5)))
    assert "5/5" in terminal.getvalue()
    assert "WhereAndWhen" in terminal.getvalue()

    terminal.seek(0)
    terminal.truncate()
    infra = {"backend": "ThreadPool", "folder": tmp_path / "b", "progress": False}
    list(WhereAndWhen(infra=infra).run_many(range(5)))
    assert terminal.getvalue() == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    list(WhereAndWhen(infra={"backend": "ProcessPool", "folder": tmp_path}).run_many(range(5)))
    assert capsys.readouterr().err == ""


INTERRUPTED_POOL = """
import signal, sys, time
from assay_steps import Step


class Sleepy(Step):
    def _run(self, value: int) -> int:
        time.sleep(60)
        return value


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    step = Sleepy(infra={"backend": "ProcessPool", "folder": sys.argv[1], "max_jobs": 2})
    print("started", flush=True)
    try:
        list(step.run_many(range(8)))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise
"""


@pytest.mark.slow
def test_ctrl_c_sent_to_the_driver_alone_stops_the_pool_at_once(tmp_path: Path) -> None:
    # `kill -INT <pid>` or a scheduler signalling one process: the workers get no signal, and
    # the driver must not wait for their (here one-minute) items before it exits
    import signal
    import subprocess

    script = tmp_path / "interrupted_pool.py"
    script.write_text(INTERRUPTED_POOL)
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the test's own Ctrl-C handling stays out of it
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline() == "started\n"
        time.sleep(2)  # the workers are inside their items
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=20)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert "KeyboardInterrupt" in err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker of the driver's session is left behind
        os.killpg(driver.pid, 0)
