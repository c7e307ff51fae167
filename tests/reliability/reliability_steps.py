"""Steps, operations and process helpers shared by the reliability suite and its workers.

This module is imported by the tests (through ``conftest.py``, which puts this folder on
``sys.path``) and by ``sweep_worker.py``, a script run in fresh interpreters, so that a
worker and the test that checks its folder agree on the step classes and the expected
values.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from assay_ops import Capture, SeedBundle, operation
from assay_steps import Step

#: The suite's heavy variant (many more kill points and concurrent runs) runs when this is set.
HEAVY = os.environ.get("ASSAY_RELIABILITY_HEAVY", "") not in ("", "0")


class ItemFailed(ValueError):
    """The error that some items raise on purpose (cached errors are entries too)."""


def expected(i: int) -> Any:
    """Return the correct result of item ``i``: arrays, dicts with bytes, small tuples.

    Sizes vary (a few bytes to ~0.8 MB) so that writes take a noticeable time and a kill
    lands inside them.
    """
    kind = i % 3
    if kind == 0:
        return np.arange(2_000 + (i * 7919) % 100_000, dtype=np.float64) * (i + 1)
    if kind == 1:
        return {"i": i, "blob": bytes([i % 251]) * (50_000 + (i * 104_729) % 200_000)}
    return (i, float(i) / 7, str(i))


def fails(i: int) -> bool:
    """Items whose computation raises :class:`ItemFailed` (their entry is a cached error)."""
    return i % 11 == 10


def segments(items: list[int]) -> list[list[int]]:
    """Cut ``items`` after each item that fails: ``run_many`` computes a segment in full.

    ``run_many`` raises the first error among its items, before computing when the error is
    already cached (as exca does), so the items after a failing one are reached only by a
    call that starts after it.
    """
    cut: list[list[int]] = [[]]
    for i in items:
        cut[-1].append(i)
        if fails(i):
            cut.append([])
    return [segment for segment in cut if segment]


def sweep_all(step: Step, items: list[int]) -> None:
    """Compute every item of ``items`` with ``run_many``, one segment at a time."""
    for segment in segments(items):
        try:
            list(step.run_many(segment))
        except ItemFailed:
            # Raised before computing when the error was already cached: the items before it
            # may still be missing (left to a worker that was killed since).
            list(step.run_many(segment[:-1]))


def assert_every_result(step: Step, items: list[int]) -> None:
    """Assert that ``step.run`` gives each item's expected value, or raises for failing ones."""
    for i in items:
        try:
            value = step.run(i)
        except ItemFailed:
            assert fails(i), f"item {i} raised"
        else:
            assert not fails(i), f"item {i} returned {value!r:.60}"
            assert same(value, expected(i)), f"item {i}: wrong value {value!r:.60}"


def same(a: Any, b: Any) -> bool:
    """Exact equality for the values :func:`expected` returns (arrays by dtype, shape, bytes)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    return type(a) is type(b) and bool(a == b)


def record_computation(log: str, i: int) -> None:
    """Append a line ``<item> <pid>`` to the file ``log`` for each computation of item ``i``.

    One ``write`` to a file opened with ``O_APPEND``: lines of concurrent processes never
    mix, so the file counts every computation, by whichever process made it.
    """
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{i} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


class ReliabilityPayload(Step):
    """A step whose item ``i`` is :func:`expected` (or a cached :class:`ItemFailed`).

    ``side_effects`` names a log file where every computation appends a line; it is left out
    of the cache uid, so steps with different logs share their entries.
    """

    side_effects: str = ""
    delay: float = 0.0

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["side_effects", "delay"]

    def _run(self, value: int) -> Any:
        record_computation(self.side_effects, value)
        if self.delay:
            time.sleep(self.delay)
        if fails(value):
            raise ItemFailed(f"item {value} fails on purpose")
        return expected(value)


def computed_by(log: Path) -> dict[int, list[int]]:
    """The pids of the processes that computed each item, one per computation, from ``log``."""
    pids: dict[int, list[int]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            item, pid = line.split()
            pids.setdefault(int(item), []).append(int(pid))
    return pids


def computations(log: Path) -> dict[int, int]:
    """Count the computations of each item recorded in ``log`` by :class:`ReliabilityPayload`."""
    return {item: len(pids) for item, pids in computed_by(log).items()}


@operation
def noisy(params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """An experiment operation: metrics from its seed stream and an artifact, a little slow."""
    rng = seeds.numpy()
    draws = rng.random(int(params["n"]))
    time.sleep(float(params.get("sleep", 0.002)))
    capture.metric("mean", float(draws.mean()))
    capture.metric("first", float(draws[0]))
    capture.artifact("draws.npy", draws)


# ---------------------------------------------------------------- processes


def start_forked(target: Callable[[], None]) -> int:
    """Run ``target`` in a forked child; return its pid (collect it with :func:`wait_forked`).

    The child exits with 0 when ``target`` returned, 1 when it raised (its traceback goes to
    stderr). Forking reuses the parent's imports, so a child costs milliseconds.
    """
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller (the test runner)
        code = 1
        try:
            target()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    return pid


def wait_forked(pid: int) -> int:
    """Wait for a child; return its status as ``os.waitstatus_to_exitcode`` gives it."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_forked(target: Callable[[], None], *, kill_after: float | None = None) -> int:
    """Run ``target`` in a forked child; SIGKILL it after ``kill_after`` seconds if given.

    Returns the child's wait status as from ``os.waitstatus_to_exitcode``: 0 on success,
    1 when ``target`` raised (its traceback goes to stderr), ``-SIGKILL`` when killed.
    """
    pid = start_forked(target)
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(min(0.002, max(0.0, deadline - time.monotonic())))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return wait_forked(pid)


def process_state(pid: int) -> str:
    """The state letter of process ``pid`` in ``/proc`` (``R``, ``S``, ``T`` stopped, ``Z``...)."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat.rsplit(b")", 1)[-1].split()[0].decode()


#: The file-system calls of the write path: the segment append (``pwrite``), its seal
#: (``pwrite``, ``fdatasync``), a new segment or array file (``open``, ``mkdir``), an array
#: file's ``write``/``fsync``/``rename``, a claim's temporary file and rename, its release
#: (``unlink``), the heartbeat file, the flushes of folders and file system.
_WATCHED = (
    "open",
    "write",
    "pwrite",
    "close",
    "replace",
    "rename",
    "unlink",
    "fsync",
    "fdatasync",
    "ftruncate",
    "utime",
    "mkdir",
)

#: Where a kill lands relative to the call it is attached to: just before it, just after it
#: returned, or inside it (a write that wrote half its bytes, as a kill during a long write
#: leaves it).
PHASES = ("before", "after", "torn")
#: The calls a kill can tear (phase ``"torn"``).
TEARABLE = ("write", "pwrite")


@contextlib.contextmanager
def _watching(on_call: Callable[[str, str, tuple[Any, ...]], bool]) -> Iterator[None]:
    """Report each file-system call among :data:`_WATCHED` of this process to ``on_call``.

    ``on_call(name, phase, args)`` is called with phase ``"before"`` then ``"after"`` the
    call (returned or raised); for a write (:data:`TEARABLE`) it may return True at
    ``"before"`` to have the call write only the first half of its bytes, then be called
    with phase ``"torn"``.
    """
    originals = {name: getattr(os, name) for name in _WATCHED}

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def watched(*args: Any, **kwargs: Any) -> Any:
            if on_call(name, "before", args) and name in TEARABLE:
                view = memoryview(args[1]).cast("B")
                half = original(args[0], view[: max(1, len(view) // 2)], *args[2:])
                on_call(name, "torn", args)
                return half
            try:
                return original(*args, **kwargs)
            finally:  # a call that failed (a file not there) is a kill point all the same
                on_call(name, "after", args)

        return watched

    for name in _WATCHED:
        setattr(os, name, wrap(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(os, name, original)


@contextlib.contextmanager
def kill_at_call(number: int, phase: str = "before") -> Iterator[None]:
    """SIGKILL this process at its ``number``-th watched file-system call, in ``phase``.

    Used in a forked child: it enumerates crash points through the write path
    deterministically. Phase ``"torn"`` of a call that is not a write is ``"after"``.
    """
    count = [0]

    def on_call(name: str, when: str, args: tuple[Any, ...]) -> bool:
        if when == "before":
            count[0] += 1
        if count[0] != number:
            return False
        if phase == "torn" and name in TEARABLE and _length(args) > 1:
            if when == "torn":
                os.kill(os.getpid(), signal.SIGKILL)
            return when == "before"  # write half of the bytes, then report "torn"
        if when == ("before" if phase == "before" else "after"):
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    with _watching(on_call):
        yield


def _length(args: tuple[Any, ...]) -> int:
    return len(memoryview(args[1])) if len(args) > 1 else 0


def trace_calls(target: Callable[[], None]) -> list[str]:
    """Return the names of the watched file-system calls ``target`` makes, in order.

    ``target`` runs in a forked child. A write of more than one byte is named with a ``+``
    (``"write+"``, ``"pwrite+"``): it can be torn.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            names: list[str] = []

            def on_call(name: str, when: str, args: tuple[Any, ...]) -> bool:
                if when == "before":
                    big = name in TEARABLE and _length(args) > 1
                    names.append(f"{name}+" if big else name)
                return False

            with _watching(on_call):
                target()
            data = " ".join(names).encode()
            while data:
                data = data[os.write(write, data) :]
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the tracing child failed")
    return text.decode().split()


def kill_points(calls: list[str]) -> list[tuple[int, str]]:
    """Every kill point of a traced run: before and after each call, inside each long write."""
    points = []
    for number, name in enumerate(calls, start=1):
        points += [(number, "before"), (number, "after")]
        if name.endswith("+"):
            points.append((number, "torn"))
    return points


def count_calls(target: Callable[[], None]) -> int:
    """Return how many watched file-system calls ``target`` makes (run in a forked child)."""
    return len(trace_calls(target))


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative, for before/after comparisons."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@operation
def counted(context: Any, params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Like :func:`noisy`, logging each computation to the file ``context["side_effects"]``."""
    record_computation(str(context["side_effects"]), int(params["i"]))
    rng = seeds.numpy()
    draws = rng.random(100)
    time.sleep(0.002)
    capture.metric("mean", float(draws.mean()))
    capture.artifact("draws.npy", draws)


@operation
def held(context: Any, params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Waits while the file ``context["hold"]`` exists; SIGKILLs its own process (the job's
    worker on the node) while ``context["kill"]`` exists; then records a seeded metric."""
    if os.path.exists(str(context["kill"])):
        os.kill(os.getpid(), signal.SIGKILL)
    while os.path.exists(str(context["hold"])):
        time.sleep(0.05)
    capture.metric("value", float(seeds.numpy().random()) + int(params["i"]))
