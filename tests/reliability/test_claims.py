"""Claims left by killed workers are taken over; a live worker's claim never is.

A claim names a chunk of items and its owner. It is stale only once its owner is dead: on this
host when its process is gone (or its pid now belongs to another process), from another host
when its heartbeat file stopped beating. A paused process is alive: its claim holds, whatever
the age of its heartbeat. Several processes recovering the same stale claims at once compute
each item exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from assay_steps import _claims
from audit import audit_steps, count
from layout import claim_files, new_process
from reliability_steps import (
    HEAVY,
    ReliabilityPayload,
    assert_every_result,
    computations,
    computed_by,
    fails,
    process_state,
    run_forked,
    start_forked,
    sweep_all,
    wait_forked,
)

ITEMS = list(range(6))


def step_on(folder: Path, log: Path | None = None, delay: float = 0.0) -> ReliabilityPayload:
    side = "" if log is None else str(log)
    infra = {"backend": "Cached", "folder": folder}
    return ReliabilityPayload(side_effects=side, delay=delay, infra=infra)


def claims_folder(folder: Path) -> Path:
    return step_on(folder).lookup(0).paths.claims_folder


def killed_in_compute(folder: Path) -> int:
    """Start a sweep and SIGKILL it while it computes, its claim in place; return its status."""
    worker = start_forked(lambda: step_on(folder, delay=1.0).run_many(ITEMS))
    deadline = time.monotonic() + 30
    while not claim_files(folder) and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(worker, signal.SIGKILL)
    return wait_forked(worker)


def killed_before_the_rename(folder: Path) -> None:
    """Sweep, SIGKILLed right after creating the temporary file of its first claim."""
    original: Callable[..., int] = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = original(path, flags, *args, **kwargs)
        if os.fsdecode(path).endswith(".claim.tmp"):
            os.kill(os.getpid(), signal.SIGKILL)
        return fd

    os.open = open_  # in this forked child only
    step_on(folder).run_many(ITEMS)


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look untouched for ``seconds`` (as if that much time had passed)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_claim_of_a_killed_worker_is_taken_over_at_once(tmp_path: Path) -> None:
    assert killed_in_compute(tmp_path) == -signal.SIGKILL
    (claim,) = claim_files(tmp_path)
    new_process()
    step = step_on(tmp_path)
    assert step.lookup(0).status is None  # not "running": its process is gone
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)
    assert not claim.exists(), "the stale claim was not removed by the run that took it over"
    assert claim_files(tmp_path) == []


def test_a_claim_killed_before_its_rename_is_never_seen(tmp_path: Path) -> None:
    # Killed between creating the claim's temporary file and renaming it into place: the
    # temporary file names no owner and is never read as a claim.
    assert run_forked(partial(killed_before_the_rename, tmp_path)) == -signal.SIGKILL
    assert claim_files(tmp_path) == []
    assert [p.name for p in claims_folder(tmp_path).glob(".*.tmp")] != []
    new_process()
    step = step_on(tmp_path)
    assert step.lookup(0).status is None
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)


def hold_claim(folder: Path, uids: list[str], pipes: tuple[int, int, int, int]) -> None:
    """Claim ``uids``, report the claim on pipe ``ready``, hold it until ``release`` closes."""
    ready_r, ready, release, release_w = pipes
    os.close(ready_r)
    os.close(release_w)  # else this process itself keeps the pipe open
    claim = _claims.Claim.take(str(step_on(folder).lookup(0).paths.entries_folder), uids)
    os.write(ready, json.dumps(claim.granted).encode() + b"\n")
    os.read(release, 1)
    claim.release()


def test_a_live_claim_is_never_taken_over(tmp_path: Path) -> None:
    """A claim of a live process holds, even when its heartbeat looks long dead."""
    step = step_on(tmp_path)
    handle = step.lookup(0)
    entries = str(handle.paths.entries_folder)
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pipes = (ready_r, ready_w, release_r, release_w)
    holder = start_forked(partial(hold_claim, tmp_path, [handle.uid], pipes))
    os.close(ready_w)
    os.close(release_r)
    try:
        with os.fdopen(ready_r, "rb") as ready:
            assert json.loads(ready.readline()) == [handle.uid]
        (beat,) = claims_folder(tmp_path).glob(f"*-{holder}-*.beat")
        age(beat, 100 * _claims.STALE_SECONDS)  # the heartbeat counts only across hosts
        assert step.lookup(0).status == "running"
        mine = _claims.Claim.take(entries, [handle.uid])
        assert mine.granted == [], "a live claim was taken over"
        mine.release()
        assert step.lookup(0).status == "running"
    finally:
        os.close(release_w)
        assert wait_forked(holder) == 0
    assert step.lookup(0).status is None  # released


def plant_claim(folder: Path, uids: list[str], owner: dict[str, Any], name: str) -> Path:
    """Write a claim file as its owner would have (whole, renamed into place)."""
    claims = claims_folder(folder)
    claims.mkdir(parents=True, exist_ok=True)
    path = claims / f"{name}.claim"
    path.write_text(json.dumps(owner) + "\n" + "\n".join(uids))
    return path


def dead_pid() -> int:
    """The pid of a process that ended and was reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _owner(host: str, pid: int, beat: str, started: str | None = None) -> dict[str, Any]:
    return {"host": host, "pid": pid, "started": started, "beat": beat, "time": time.time()}


@pytest.mark.parametrize(
    ("beat_age", "live"),
    [(0.0, True), (0.5, True), (2.0, False), (None, False)],
    ids=["fresh", "half-stale", "stale", "no-heartbeat"],
)
def test_a_claim_from_another_host_lives_while_its_heartbeat_beats(
    tmp_path: Path, beat_age: float | None, live: bool
) -> None:
    step = step_on(tmp_path)
    handle = step.lookup(0)
    beat = "elsewhere-4242-cafe0000.beat"
    plant_claim(tmp_path, [handle.uid], _owner("elsewhere", 4242, beat), "elsewhere-4242-c-0")
    if beat_age is not None:
        (claims_folder(tmp_path) / beat).touch()
        age(claims_folder(tmp_path) / beat, beat_age * _claims.STALE_SECONDS)
    assert step.lookup(0).status == ("running" if live else None)
    granted = _claims.Claim.take(str(handle.paths.entries_folder), [handle.uid])
    assert granted.granted == ([] if live else [handle.uid])
    granted.release()


@pytest.mark.parametrize("case", ["dead-pid", "reused-pid"])
def test_a_claim_of_a_process_of_this_host_that_ended_is_stale(tmp_path: Path, case: str) -> None:
    """Gone, or its pid now another process's (its start time differs): stale at once."""
    step = step_on(tmp_path)
    handle = step.lookup(0)
    if case == "dead-pid":
        owner = _owner(_claims.HOST, dead_pid(), "x.beat")
    else:  # this very process, but started at another time: the pid was reused
        owner = _owner(_claims.HOST, os.getpid(), "x.beat", started="1")
    plant_claim(tmp_path, [handle.uid], owner, f"{_claims.HOST}-{owner['pid']}-c-0")
    assert step.lookup(0).status is None
    step.run_many(ITEMS)
    assert audit_steps(tmp_path, ITEMS).complete == len(ITEMS)
    assert claim_files(tmp_path) == []


# ---------------------------------------------------------------- a paused worker

PAUSED = [i for i in range(12) if not fails(i)]  # the first worker's items
BOTH = [i for i in range(20) if not fails(i)]  # the second's: the first's and eight more


def test_a_paused_worker_keeps_its_claim_and_nobody_computes_its_items(tmp_path: Path) -> None:
    """SIGSTOP a worker mid-sweep and age its heartbeat far past staleness: it is alive.

    A second worker on the same items computes only the items nobody holds and waits for
    the paused worker's; once the first is continued, every item ends computed exactly once.
    """
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    first = start_forked(lambda: list(step_on(folder, log, delay=0.1).run_many(PAUSED)))
    second = None
    try:
        deadline = time.monotonic() + 30
        while len(computations(log)) < 2:  # the first holds its claim and computes
            assert time.monotonic() < deadline, "the first worker never started computing"
            time.sleep(0.005)
        os.kill(first, signal.SIGSTOP)
        while process_state(first) != "T":
            assert time.monotonic() < deadline, "the first worker did not stop"
            time.sleep(0.005)
        done_before = set(computations(log))
        assert done_before < set(PAUSED), "the first worker finished before it was paused"
        for beat in claims_folder(folder).glob(f"*-{first}-*.beat"):
            age(beat, 100 * _claims.STALE_SECONDS)
        count("paused workers")

        second = start_forked(lambda: list(step_on(folder, log).run_many(BOTH)))
        mine = set(BOTH) - set(PAUSED)
        while not mine <= set(computations(log)):
            assert time.monotonic() < deadline, "the second worker did not compute its items"
            time.sleep(0.01)
        time.sleep(1.5)  # time enough to take over a claim it took for stale
        assert process_state(first) == "T"
        assert os.waitpid(second, os.WNOHANG) == (0, 0), "the second did not wait"
        by = computed_by(log)
        taken = sorted(i for i in PAUSED if second in by.get(i, []))
        count("items of a paused worker computed by another", len(taken))
        assert taken == [], f"the second worker computed the paused worker's items {taken}"
        new_process()
        held = [i for i in PAUSED if i not in done_before]
        assert {step_on(folder).lookup(i).status for i in held} <= {"running", "success"}
    finally:
        os.kill(first, signal.SIGCONT)
        statuses = [wait_forked(first)] + ([] if second is None else [wait_forked(second)])
    assert statuses == [0, 0], "a worker raised (traceback on stderr)"
    counts = computations(log)
    count("duplicate computations after a pause", sum(counts.values()) - len(BOTH))
    assert counts == dict.fromkeys(BOTH, 1)
    found = audit_steps(folder, BOTH)
    assert (found.complete, found.wrong) == (len(BOTH), [])
    assert claim_files(folder) == []


def test_a_worker_killed_while_another_waits_for_it_is_taken_over(tmp_path: Path) -> None:
    """The waiting worker computes what the killed one left, once, and nothing it finished.

    The first worker logs each item as it starts it: every item it started before its last
    one was finished (its entry written), the last one may have been cut by the kill.
    """
    folder, log = tmp_path / "cache", tmp_path / "computations.log"
    first = start_forked(lambda: list(step_on(folder, log, delay=0.1).run_many(PAUSED)))
    second = None
    try:
        deadline = time.monotonic() + 30
        while len(computations(log)) < 3:
            assert time.monotonic() < deadline, "the first worker never started computing"
            time.sleep(0.005)
        second = start_forked(lambda: list(step_on(folder, log).run_many(BOTH)))
        mine = set(BOTH) - set(PAUSED)
        while not mine <= set(computations(log)):  # the second waits for the first's items
            assert time.monotonic() < deadline, "the second worker did not compute its items"
            time.sleep(0.01)
        os.kill(first, signal.SIGKILL)
        assert wait_forked(first) == -signal.SIGKILL
        count("kill points tried")
        status, second = wait_forked(second), None
    finally:
        if second is not None:
            os.kill(second, signal.SIGKILL)
            wait_forked(second)
    assert status == 0, "the waiting worker raised (traceback on stderr)"
    started = [i for i, pid in _log_lines(log) if pid == first]
    assert set(started) < set(PAUSED), "the first worker finished before it was killed"
    by = computed_by(log)
    again = [i for i in started[:-1] if len(by[i]) > 1]
    assert again == [], f"items the killed worker had finished were computed again: {again}"
    taken = {i: len(by.get(i, [])) - started.count(i) for i in BOTH if i not in started[:-1]}
    assert taken == dict.fromkeys(taken, 1), "each item left is computed once by the waiter"
    found = audit_steps(folder, BOTH)
    assert (found.complete, found.wrong) == (len(BOTH), [])


def _log_lines(log: Path) -> list[tuple[int, int]]:
    """The computations in ``log``, in order: (item, pid)."""
    return [
        (int(i), int(pid)) for i, pid in (line.split() for line in log.read_text().splitlines())
    ]


# ---------------------------------------------------------------- concurrent recovery

RECOVERED = list(range(24))


def plant_stale_claims(folder: Path) -> None:
    """Leave stale claims over every item, of each kind: dead pid, reused pid, silent host."""
    step = step_on(folder)
    uids = [step.lookup(i).uid for i in RECOVERED]
    beat = "faraway-77-0badbeef.beat"
    owners = [
        _owner(_claims.HOST, dead_pid(), "x.beat"),
        _owner(_claims.HOST, os.getpid(), "x.beat", started="1"),
        _owner("faraway", 77, beat),
    ]
    for k, owner in enumerate(owners):
        plant_claim(folder, uids[k::3], owner, f"{owner['host']}-{owner['pid']}-c-{k}")
    (claims_folder(folder) / beat).touch()
    age(claims_folder(folder) / beat, 10 * _claims.STALE_SECONDS)


def recoverer(folder: Path, log: Path, start: float, reverse: bool) -> None:
    """Run the sweep once the common start time is reached, then check every result."""
    items = RECOVERED[::-1] if reverse else RECOVERED
    step = step_on(folder, log)
    time.sleep(max(0.0, start - time.time()))
    sweep_all(step, items)
    assert_every_result(step, items)


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_recovering_the_same_stale_claims_compute_each_item_once(
    tmp_path: Path, processes: int
) -> None:
    for repeat in range(6 if HEAVY else 2):
        folder, log = tmp_path / f"run{repeat}" / "cache", tmp_path / f"run{repeat}" / "log"
        plant_stale_claims(folder)
        start = time.time() + 0.3  # lets every process be forked before any starts
        with ThreadPoolExecutor(processes) as pool:
            jobs = [partial(recoverer, folder, log, start, k % 2 == 1) for k in range(processes)]
            statuses = list(pool.map(run_forked, jobs))
        assert statuses == [0] * processes, "a recoverer raised (traceback on stderr)"
        found = audit_steps(folder, RECOVERED)
        assert (found.complete, found.wrong) == (len(RECOVERED), [])
        counts = computations(log)
        count("stale claims recovered concurrently", len(RECOVERED))
        count(
            "duplicate computations after a concurrent recovery",
            sum(counts.values()) - len(RECOVERED),
        )
        assert counts == dict.fromkeys(RECOVERED, 1)
        assert claim_files(folder) == [], "a claim was left behind"
        hidden = [p for p in folder.rglob(".*") if p.name != ".assay-cache"]  # not the marker
        assert hidden == [], "a temporary file was left behind"
