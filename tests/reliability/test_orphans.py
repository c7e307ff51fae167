"""Pool workers die with their driver.

A driver killed by SIGKILL or SIGTERM (an out-of-memory killer, a scheduler, ``kill``) gets no
chance to stop its ``ProcessPool`` workers. They must not outlive it: blocked on the pool's
queue, they would hold the folder's claims and the driver's stdout and stderr open, so that
whoever waits for the driver's output would wait for them too. On Linux each worker asks the
kernel for SIGKILL when its parent dies; a watchdog thread checks the parent every half second
as well (the only way elsewhere). Both are checked alone here, and the race where the driver
dies before the worker asked.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from assay_backends import _pools
from audit import FIGURES, count
from layout import claim_files

HERE = Path(__file__).resolve().parent
LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(not LINUX, reason="finds processes through /proc")

#: A driver: a ProcessPool sweep of items slow enough (22 × 0.5 s on 2 workers) to be killed
#: in the middle; it prints "finished" if it ever ends. Arguments: folder, start method.
DRIVER = """
import sys
from reliability_steps import ReliabilityPayload, fails
infra = {"backend": "ProcessPool", "folder": sys.argv[1], "max_jobs": 2, "progress": False}
step = ReliabilityPayload(delay=0.5, infra={**infra, "start_method": sys.argv[2]})
print("started", flush=True)
list(step.run_many([i for i in range(26) if not fails(i)]))
print("finished", flush=True)
"""


def alive_in_session(session: int) -> set[int]:
    """Return the processes of ``session`` that still run (zombies have ended: not counted).

    The driver starts a session of its own: its workers stay in it after the driver died and
    they were handed to another parent.
    """
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(b")", 1)[-1].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == session and fields[0] not in (b"Z", b"X"):
            found.add(int(name))
    return found


def _record_max(name: str, value: int) -> None:
    FIGURES[name] = max(FIGURES.get(name, 0), value)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_pool_workers_die_with_their_killed_driver(
    tmp_path: Path, signum: int, method: str
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path), method],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Wait until both workers run and compute (a claim is taken or an entry appended), then
        # kill the driver only.
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before it was killed"
            workers = alive_in_session(driver.pid) - {driver.pid}
            if len(workers) >= 2 and (claim_files(tmp_path) or list(tmp_path.rglob("*.seg"))):
                break
            time.sleep(0.01)
        assert len(workers) >= 2, "the pool's workers never started"
        os.kill(driver.pid, signum)
        killed = time.monotonic()
        # Read the driver's output to its end: EOF comes once no process holds the pipes.
        out, err = driver.communicate(timeout=10)
        eof = time.monotonic() - killed
        assert driver.returncode == -signum, err.decode()  # died by the signal...
        assert b"finished" not in out  # ...in the middle of the sweep
        while alive_in_session(driver.pid) and time.monotonic() - killed < 5:
            time.sleep(0.005)
        gone = time.monotonic() - killed
        left = alive_in_session(driver.pid)
        count("orphan pool workers left by a killed driver", len(left))
        _record_max("ms until the workers of a killed driver are gone (worst)", int(gone * 1000))
        _record_max("ms until EOF on a killed driver's output (worst)", int(eof * 1000))
        assert left == set(), f"workers outlived their driver: {sorted(left)}"
        assert eof < 5
    finally:
        with contextlib.suppress(ProcessLookupError):  # what a failed check left behind
            os.killpg(driver.pid, signal.SIGKILL)
        driver.kill()
        driver.wait()


# ---------------------------------------------------------------- each mechanism alone

PR_SET_CHILD_SUBREAPER = 36


def orphan_fate(
    prepare: Callable[[int], None], parent_death: int, *, prepare_after: bool = False
) -> dict[str, float]:
    """Return how an orphaned process ends: its wait status and seconds after its parent died.

    In a helper process that adopts orphans (a child subreaper), a parent forks a child that
    calls ``prepare(parent_pid)`` and then sleeps 20 s; the parent dies by ``parent_death``
    once the child is prepared (``prepare_after``: once the child started, before it calls
    ``prepare``). The helper collects the orphan and reports how it ended.
    """
    report_r, report_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # the helper: never returns into the test runner
        try:
            os.close(report_r)
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            ready_r, ready_w = os.pipe()
            parent = os.fork()
            if parent == 0:  # the parent and its child end here, whatever happens
                try:
                    child = os.fork()
                    if child == 0:
                        os.close(ready_r)
                        parent_pid = os.getppid()
                        if prepare_after:
                            os.write(ready_w, b"started\n")
                        prepare(parent_pid)
                        os.write(ready_w, b"prepared\n")
                        time.sleep(20)
                        os._exit(0)
                    os.close(ready_w)
                    with os.fdopen(ready_r, "rb") as ready:
                        ready.readline()  # the child is prepared (or died preparing)
                    os.kill(os.getpid(), parent_death)
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(5)
            os.close(ready_w)
            _, status = os.waitpid(parent, 0)
            died = time.monotonic()
            assert os.waitstatus_to_exitcode(status) == -parent_death
            _, status = os.waitpid(-1, 0)  # the orphan, adopted by this helper
            result = {"status": os.waitstatus_to_exitcode(status), "after": time.monotonic() - died}
            os.write(report_w, json.dumps(result).encode())
            os._exit(0)
        except BaseException as error:
            os.write(report_w, json.dumps({"error": repr(error)}).encode())
            os._exit(1)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        text = report.read()
    os.waitpid(helper, 0)
    found = json.loads(text)
    assert "error" not in found, found
    return dict(found)


@pytest.mark.parametrize("parent_death", [signal.SIGKILL, signal.SIGTERM])
def test_the_death_signal_alone_kills_an_orphaned_worker(parent_death: int) -> None:
    fate = orphan_fate(lambda parent: _pools._die_with_parent(), parent_death)
    assert fate["status"] == -signal.SIGKILL
    assert fate["after"] < 2  # the kernel's signal: no watchdog ran in this child


def test_the_watchdog_alone_kills_an_orphaned_worker() -> None:
    fate = orphan_fate(lambda parent: _pools._watch_parent(parent, interval=0.05), signal.SIGKILL)
    assert fate["status"] == -signal.SIGKILL
    assert fate["after"] < 2


def test_a_worker_whose_driver_died_before_it_started_ends_at_once() -> None:
    def late(parent: int) -> None:
        while os.getppid() == parent:  # the driver dies first...
            time.sleep(0.005)
        _pools._bind_to_driver(parent, True)  # ...then it starts: it must serve no one
        os._exit(4)  # not reached when the worker ends itself

    fate = orphan_fate(late, signal.SIGKILL, prepare_after=True)
    assert fate["status"] == -signal.SIGKILL


def test_a_worker_whose_driver_died_while_it_asked_for_the_signal_ends_at_once() -> None:
    def racing(parent: int) -> None:
        ask = _pools._die_with_parent

        def ask_late() -> None:  # the driver dies while the worker asks for the death signal
            while os.getppid() == parent:
                time.sleep(0.005)
            ask()

        # Only in this forked child: its own copy of the module.
        _pools._die_with_parent = ask_late  # type: ignore[method-assign]
        _pools._watch_parent = lambda parent, interval=0.0: None  # type: ignore[assignment]
        _pools._bind_to_driver(parent, True)
        os._exit(4)  # not reached when the worker ends itself

    fate = orphan_fate(racing, signal.SIGKILL, prepare_after=True)
    assert fate["status"] == -signal.SIGKILL


@pytest.mark.parametrize("handle", [True, False], ids=["process-handle", "polling"])
@pytest.mark.parametrize("late", [False, True], ids=["driver-dies-later", "driver-already-gone"])
def test_a_fork_server_worker_watches_its_driver(handle: bool, late: bool) -> None:
    # A fork server's worker has the fork server, not the driver, as its parent.
    def watching(driver: int) -> None:
        if not handle:  # only in this forked child: a system without process handles
            delattr(os, "pidfd_open")
        if late:
            while os.getppid() == driver:
                time.sleep(0.005)
        _pools._bind_to_driver(driver, False)
        if late:
            os._exit(4)  # not reached when the worker ends itself

    fate = orphan_fate(watching, signal.SIGKILL, prepare_after=late)
    assert fate["status"] == -signal.SIGKILL
    assert fate["after"] < 2
