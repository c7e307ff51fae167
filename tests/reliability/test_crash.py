"""Crash during write: workers killed with SIGKILL at many points while writing.

After every kill: no partial entry is read (a torn frame at the end of a segment is not an
entry, and every entry that is present verifies), every complete entry is correct, and a rerun
completes the sweep with every result equal to a clean run's. The kill points are the file-system
calls of the write path (the segment append, its seal and flush, a claim's temporary file, rename
and release, an array file's write and rename, the flushes of folders), each killed before the
call, after it, and, for a write, in the middle of it (half its bytes written). The default run
tries two points of each kind of call and phase; the heavy variant (``ASSAY_RELIABILITY_HEAVY=1``)
tries every point of a sweep.

Every kill is checked to have landed: the worker died by SIGKILL before its sweep completed
(a completed sweep leaves a marker, and a kill at a random time must leave some item still
missing). A kill that came too late tested nothing: the folder is put back as it was before
it and an earlier kill point is tried; the test fails when none lands.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from assay_backends import JobError
from audit import (
    audit_steps,
    check_items_from_run_many,
    count,
    metrics_by_run,
    stray_files,
)
from layout import (
    claim_files,
    dead_heartbeats,
    frames,
    new_process,
    owner_alive,
    temporaries,
    unreferenced_arrays,
)
from reliability_steps import (
    HEAVY,
    ReliabilityPayload,
    kill_at_call,
    kill_points,
    run_forked,
    sweep_all,
    trace_calls,
)

from assay import Experiment, Results, explicit

ITEMS = list(range(24))
HERE = Path(__file__).resolve().parent
#: Seconds each item takes to compute in the sweeps killed at random times: a sweep lasts
#: about 0.1 s instead of 0.02 s, so that a kill at a random time lands inside it.
ITEM_DELAY = 0.003
#: The same for the process pool's workers (two of them, started by a fresh interpreter).
POOL_ITEM_DELAY = 0.02
#: Kill points tried, each earlier than the last, before a test gives up on landing a kill.
KILL_TRIES = 6


def sweep(folder: Path, items: list[int] = ITEMS, delay: float = 0.0) -> None:
    """Compute every item into ``folder`` (the worker's job), as a new process would."""
    new_process()  # a forked worker starts from the folder's files, not the parent's memory
    step = ReliabilityPayload(delay=delay, infra={"backend": "Cached", "folder": folder})
    # run_many computes and writes the missing entries before returning; an item that raises
    # ends its batch (the items after it stay missing), so a sweep runs one segment at a time.
    sweep_all(step, items)


def swept(folder: Path) -> Path:
    """The marker a worker leaves, beside ``folder``, once its sweep completed."""
    return folder.with_name(f"{folder.name}.swept")


def sweep_and_mark(folder: Path, delay: float = 0.0) -> None:
    """Sweep, then leave the completion marker (a worker killed before it leaves none)."""
    sweep(folder, delay=delay)
    swept(folder).touch()


def sweep_killed_at(folder: Path, point: tuple[int, str]) -> None:
    """Sweep, SIGKILLed at a kill point: this process's n-th watched call, in a phase."""
    with kill_at_call(*point):
        sweep(folder)
    swept(folder).touch()  # not watched: reached only when the sweep needed fewer calls


def missing_items(folder: Path) -> int:
    """How many items of the sweep have no entry in ``folder`` (all of them if it is absent)."""
    return audit_steps(folder, ITEMS).missing if folder.exists() else len(ITEMS)


def kill_until_it_lands(
    folder: Path,
    kill: Callable[[int], int],
    completed: Callable[[], bool],
) -> None:
    """Kill a worker sweeping ``folder`` until the kill lands before the sweep completed.

    ``kill(attempt)`` runs a worker and kills it at a point it chooses (earlier at each
    attempt), returning the worker's exit status; ``completed()`` tells whether the sweep
    completed anyway. A kill that landed leaves a status of ``-SIGKILL`` and an incomplete
    sweep. Otherwise the kill tested nothing: ``folder`` is put back as it was before it and
    the next attempt made; after :data:`KILL_TRIES` attempts the test fails.
    """
    snapshot = folder.with_name(f"{folder.name}.before-kill")
    if folder.exists():
        shutil.copytree(folder, snapshot, symlinks=True)
    try:
        for attempt in range(KILL_TRIES):
            status = kill(attempt)
            assert status in (0, -signal.SIGKILL), f"the worker raised (status {status})"
            if status == -signal.SIGKILL and not completed():
                count("kill points tried")
                return
            count("kills retried: the sweep completed before the kill")
            shutil.rmtree(folder, ignore_errors=True)
            swept(folder).unlink(missing_ok=True)
            if snapshot.exists():
                shutil.copytree(snapshot, folder, symlinks=True)
        pytest.fail(f"{KILL_TRIES} kills in a row came after the sweep of {folder} completed")
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def check_after_kill(folder: Path) -> int:
    """Audit a folder a killed worker left behind; return how many items are complete."""
    found = audit_steps(folder, ITEMS)
    count("items read back after a kill", found.complete)
    count("wrong values returned", len(found.wrong))
    count("corrupt entries after a kill", found.corrupt)
    assert found.wrong == [], found.wrong
    assert found.corrupt == 0, "a killed worker left an entry that does not verify"
    assert stray_files(folder) == []
    return found.complete


def check_rerun_completes(folder: Path) -> None:
    """A rerun after the kills completes the sweep, every result equal to a clean run's.

    Counts what the killed workers left behind that no reader uses: temporary files of
    writes cut before their rename, array files whose frame was never appended, heartbeat
    files of dead processes (see ``test_a_later_run_removes_what_killed_writers_left``).
    """
    sweep(folder)
    found = audit_steps(folder, ITEMS)
    lost = len(ITEMS) - found.complete
    count("items lost", lost)
    count("wrong values returned", len(found.wrong))
    assert (lost, found.wrong) == (0, [])
    assert check_items_from_run_many(folder, ITEMS) == []
    live = [p.name for p in claim_files(folder) if owner_alive(p)]
    assert live == [], f"claims of live processes left after a complete rerun: {live}"
    count("claims of killed workers left after a complete rerun", len(claim_files(folder)))
    assert stray_files(folder) == []
    count("temporary files left by killed writers", len(temporaries(folder)))
    count("array files left without a frame by killed writers", len(unreferenced_arrays(folder)))
    count("heartbeat files left by killed writers", len(dead_heartbeats(folder)))


def test_clean_run_is_the_reference(tmp_path: Path) -> None:
    sweep(tmp_path)
    found = audit_steps(tmp_path, ITEMS)
    assert (found.complete, found.wrong) == (len(ITEMS), [])


def _point_sample(
    points: list[tuple[int, str]], calls: list[str], rng: random.Random, per_kind: int = 2
) -> list[tuple[int, str]]:
    """A few kill points of each kind (call and phase), drawn at random among its points."""
    kinds: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for number, phase in points:
        kinds.setdefault((calls[number - 1], phase), []).append((number, phase))
    drawn = [rng.sample(group, min(per_kind, len(group))) for group in kinds.values()]
    return sorted(point for group in drawn for point in group)


def test_sigkill_at_file_system_calls_of_the_write_path(tmp_path: Path) -> None:
    """Kill the worker at a kill point of its write path: before, after or inside a call.

    Each case kills a first worker at its point, then the recovering worker at a random
    point among those its recovery makes (a crash during recovery, with the dead worker's
    claims to take over), audits after each kill, and reruns to completion. Each kill must
    land before its sweep completed; the recovery's calls are traced on a copy first.
    """
    calls = trace_calls(lambda: sweep(tmp_path / "count"))
    assert calls.count("pwrite+") > len(ITEMS)  # the segment appends were really watched
    for needed in ("open", "write+", "replace", "unlink", "mkdir"):
        assert needed in calls, f"no {needed} call was watched"
    points = kill_points(calls)
    rng = random.Random(20261125)
    firsts = points if HEAVY else _point_sample(points, calls, rng)
    count("kill points of a sweep", len(points))

    def killed_at(folder: Path, first: tuple[int, str], attempt: int) -> int:
        if attempt == 0:
            point = first
        else:  # too late: an earlier point
            point = (rng.randint(1, max(1, first[0] >> attempt)), rng.choice(["before", "torn"]))
        return run_forked(partial(sweep_killed_at, folder, point))

    for case, first in enumerate(firsts):
        folder = tmp_path / f"case{case}"
        done = swept(folder).exists
        kill_until_it_lands(folder, partial(killed_at, folder, first), done)
        count("kills that left items missing", missing_items(folder) > 0)
        check_after_kill(folder)

        # The calls of the recovery, traced on a copy: the dead worker's claims are stale.
        probe = tmp_path / f"case{case}-probe"
        if folder.exists():
            shutil.copytree(folder, probe, symlinks=True)
        recovery = kill_points(trace_calls(lambda probe=probe: sweep(probe)))
        shutil.rmtree(probe)
        if missing_items(folder):
            second = rng.choice(recovery)
            kill_until_it_lands(folder, partial(killed_at, folder, second), done)
            count("kills that left items missing", missing_items(folder) > 0)
            check_after_kill(folder)
        check_rerun_completes(folder)
        shutil.rmtree(folder)  # the heavy variant makes hundreds of cases
        swept(folder).unlink(missing_ok=True)


def test_a_later_run_removes_what_killed_writers_left(tmp_path: Path) -> None:
    """Files that only a killed writer leaves are removed once they are old, by a later run.

    A worker killed between creating a temporary file and renaming it (an array file, a
    claim) leaves the temporary file, and a killed worker its heartbeat file: nothing reads
    them, and without a clean-up a folder that sees many kills (preempted jobs) grows a file
    per kill forever. A day later, the next run on the folder removes them.
    """
    left = tmp_path / "cache"
    for pattern in ("*/arrays/.*.tmp", "*/claims/.*.tmp"):
        status = run_forked(partial(killed_after_creating, left, pattern))
        assert status == -signal.SIGKILL, f"no file matching {pattern} was created"
    assert {p.parent.name for p in temporaries(left)} >= {"arrays", "claims"}
    assert dead_heartbeats(left) != []
    day_ago = time.time() - 86_400
    for path in temporaries(left) + dead_heartbeats(left):
        os.utime(path, (day_ago, day_ago))
    assert run_forked(partial(sweep, left)) == 0
    assert audit_steps(left, ITEMS).complete == len(ITEMS)
    assert [p.name for p in temporaries(left)] == []
    assert [p.name for p in dead_heartbeats(left)] == []


def killed_after_creating(folder: Path, pattern: str) -> None:
    """Sweep, SIGKILLed as soon as a file whose path matches ``pattern`` was created."""
    original = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = original(path, flags, *args, **kwargs)
        if flags & os.O_CREAT and fnmatch.fnmatch(os.fsdecode(path), pattern):
            os.kill(os.getpid(), signal.SIGKILL)
        return fd

    os.open = open_  # only in this forked child
    sweep(folder)


def test_sigkill_at_random_times(tmp_path: Path) -> None:
    """Kill workers after random delays over the length of a sweep, several times per folder.

    Each delay is drawn over the time the items still missing take; each kill must leave
    some item missing (else an earlier one is tried), so that the next kill has work to cut.
    """
    began = time.perf_counter()
    assert run_forked(partial(sweep, tmp_path / "timing", delay=ITEM_DELAY)) == 0
    duration = time.perf_counter() - began
    rng = random.Random(7)
    rounds, kills = (10, 6) if HEAVY else (2, 4)

    def killed_after(folder: Path, window: float, attempt: int) -> int:
        delay = rng.uniform(0.0, window / 2**attempt)
        return run_forked(partial(sweep_and_mark, folder, ITEM_DELAY), kill_after=delay)

    def completed(folder: Path) -> bool:
        return swept(folder).exists() or missing_items(folder) == 0

    for case in range(rounds):
        folder = tmp_path / f"round{case}"
        complete = 0
        for _ in range(kills):
            window = 0.9 * duration * missing_items(folder) / len(ITEMS)
            kill = partial(killed_after, folder, window)
            kill_until_it_lands(folder, kill, partial(completed, folder))
            now = check_after_kill(folder)
            assert now >= complete, "a kill removed entries that were complete"
            complete = now
        check_rerun_completes(folder)


@pytest.mark.slow
def test_sigkill_of_a_process_pool_sweep_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """Kill a whole process group (driver and pool workers), as a crashed job is killed.

    Each kill comes once the pool has started this run's items (a claim or a frame appeared)
    and written a random number of entries (bounded so that every kill has items left to
    cut); each must land before the sweep completed, which the worker reports with a last
    line on its output.
    """
    rng = random.Random(3)
    kills = 8 if HEAVY else 1
    folder = tmp_path / "pool"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    command = [sys.executable, str(HERE / "sweep_worker.py"), str(folder), "ProcessPool"]
    command += [str(len(ITEMS)), str(POOL_ITEM_DELAY)]
    output = [b""]

    def entries() -> int:
        return len({f.uid for entries in folder.glob("*/code-*") for f in frames(entries)})

    def started(since: float, before: int) -> bool:
        """Whether the pool claimed items (or wrote an entry) since the worker started."""
        return entries() > before or any(_mtime(p) >= since for p in claim_files(folder))

    def killed_after(written: int, attempt: int) -> int:
        before, since = entries(), time.time()
        worker = subprocess.Popen(
            command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        target = before + (written if attempt == 0 else 0)
        deadline = time.monotonic() + 30
        while worker.poll() is None and time.monotonic() < deadline:
            if started(since, before) and entries() >= target:
                time.sleep(rng.uniform(0.0, POOL_ITEM_DELAY / 2**attempt))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        output[0], err = worker.communicate(timeout=30)
        assert worker.returncode in (0, -signal.SIGKILL), err.decode()
        time.sleep(0.05)  # orphaned pool workers, if any, have the same group and are gone
        return worker.returncode

    def completed() -> bool:
        return b"swept" in output[0] or missing_items(folder) == 0

    for left in range(kills, 0, -1):
        written = rng.randrange(0, max(1, (missing_items(folder) - 1) // left))
        kill_until_it_lands(folder, partial(killed_after, written), completed)
        check_after_kill(folder)
    check_rerun_completes(folder)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # released meanwhile
        return 0.0


# ---------------------------------------------------------------- experiments


def _experiment(folder: Path) -> Experiment:
    return Experiment(
        "crash",
        "reliability_steps:noisy",
        explicit([{"n": 50 + 10 * i, "sleep": 0.004} for i in range(8)]),
        replicates=3,
        seed=11,
        folder=folder,
        progress=False,
    )


def run_experiment(folder: Path) -> None:
    _experiment(folder).run()
    swept(folder).touch()


def successes(folder: Path) -> int:
    """How many runs the experiment folder holds as complete (none before its index exists)."""
    if not (folder / "index.sqlite").exists():
        return 0
    return Results.load(folder).counts().get("success", 0)


def test_sigkill_of_an_experiment_driver(tmp_path: Path) -> None:
    """Kill the driver of a sweep (it writes run records and the SQLite index) at random times.

    After each kill the folder loads, every run it reports complete equals the clean run's,
    and a final rerun completes the sweep with results equal to a clean run's. Each delay is
    drawn over the time the runs still missing take, and each kill must leave some run
    missing (else an earlier one is tried).
    """
    clean = metrics_by_run(_experiment(tmp_path / "clean").run())
    assert len(clean) == 24
    assert {s for s, _ in clean.values()} == {"success"}
    began = time.perf_counter()
    assert run_forked(partial(run_experiment, tmp_path / "timing")) == 0
    duration = time.perf_counter() - began
    rng = random.Random(5)
    rounds, kills = (8, 5) if HEAVY else (1, 4)

    def killed_after(folder: Path, window: float, attempt: int) -> int:
        delay = rng.uniform(0.0, window / 2**attempt)
        return run_forked(partial(run_experiment, folder), kill_after=delay)

    def completed(folder: Path) -> bool:
        return swept(folder).exists() or successes(folder) == len(clean)

    for case in range(rounds):
        folder = tmp_path / f"round{case}"
        for _ in range(kills):
            window = 0.9 * duration * (len(clean) - successes(folder)) / len(clean)
            kill = partial(killed_after, folder, window)
            kill_until_it_lands(folder, kill, partial(completed, folder))
            if not (folder / "index.sqlite").exists():
                continue  # killed before the index was created
            so_far = metrics_by_run(Results.load(folder))
            for run_id, (status_, metrics) in so_far.items():
                if status_ == "success":
                    ok = metrics == clean[run_id][1]
                    count("wrong values returned", not ok)
                    assert ok, f"run {run_id}: {metrics} != {clean[run_id][1]}"
                else:
                    assert status_ in ("pending", "cancelled"), status_
        final = metrics_by_run(_experiment(folder).run())
        lost = sum(final.get(k) != v for k, v in clean.items())
        count("items lost", lost)
        assert final == clean
        artifacts = list((folder / "runs").glob("*/artifacts/draws.npy"))
        assert len(artifacts) == len(clean)


@pytest.mark.slow
def test_a_killed_pool_worker_records_its_runs_as_cancelled_and_a_rerun_recovers(
    tmp_path: Path,
) -> None:
    def experiment(folder: Path) -> Experiment:
        return Experiment(
            "killed-worker",
            "reliability_steps:held",
            explicit([{"i": i} for i in range(3)]),
            context={"hold": str(tmp_path / "hold"), "kill": str(tmp_path / "kill")},
            backend={"backend": "ProcessPool", "max_jobs": 2},  # 1 would run inline
            folder=folder,
            progress=False,
        )

    clean = metrics_by_run(experiment(tmp_path / "clean").run())
    (tmp_path / "kill").touch()  # the worker process SIGKILLs itself, before computing
    with pytest.raises(JobError, match="a worker process of the pool died"):
        experiment(tmp_path / "exp").run()
    count("kill points tried")
    # The kill landed before any run completed.
    statuses = {row.run_id: row.status for row in Results.load(tmp_path / "exp")}
    assert set(statuses.values()) == {"cancelled"}, statuses
    (tmp_path / "kill").unlink()
    assert metrics_by_run(experiment(tmp_path / "exp").run()) == clean


def test_a_pool_worker_that_dies_while_the_items_are_sent_is_reported_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker may die before the driver has sent every shard: the pool then refuses them.

    The driver reports a dead worker, as when it dies later, not the executor's bare error.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    original, sent = ProcessPoolExecutor.submit, [0]

    def submit(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        if sent[0] == 2:  # what submit raises once a worker of the pool died
            raise BrokenProcessPool("A child process terminated abruptly")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    infra = {"backend": "ProcessPool", "folder": tmp_path, "max_jobs": 2, "progress": False}
    step = ReliabilityPayload(infra=infra)
    with pytest.raises(JobError, match="a worker process of the pool died") as raised:
        step.run_many(list(range(8)))
    assert isinstance(raised.value.__cause__, BrokenProcessPool)
    found = audit_steps(tmp_path, range(8))
    assert (found.wrong, found.corrupt) == ([], 0)
    assert found.missing > 0  # the shards not sent were not computed
