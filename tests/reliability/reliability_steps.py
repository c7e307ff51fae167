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
import uuid
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


def record_computation(folder: str, i: int) -> None:
    """Leave one file per computation of item ``i``, to count duplicate computations."""
    if folder:
        name = f"{i}.{os.getpid()}.{uuid.uuid4().hex}"
        with open(os.path.join(folder, name), "wb"):
            pass


class ReliabilityPayload(Step):
    """A step whose item ``i`` is :func:`expected` (or a cached :class:`ItemFailed`).

    ``side_effects`` names a folder where every computation leaves a file; it is left out
    of the cache uid, so steps with different side-effect folders share their entries.
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


def computations(folder: Path) -> dict[int, int]:
    """Count the computations of each item recorded in ``folder`` by :class:`ReliabilityPayload`."""
    counts: dict[int, int] = {}
    for path in folder.iterdir():
        item = int(path.name.split(".", 1)[0])
        counts[item] = counts.get(item, 0) + 1
    return counts


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


def run_forked(target: Callable[[], None], *, kill_after: float | None = None) -> int:
    """Run ``target`` in a forked child; SIGKILL it after ``kill_after`` seconds if given.

    Returns the child's wait status as from ``os.waitstatus_to_exitcode``: 0 on success,
    1 when ``target`` raised (its traceback goes to stderr), ``-SIGKILL`` when killed.
    Forking reuses the parent's imports, so each kill point costs milliseconds.
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
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(_)
            time.sleep(min(0.002, max(0.0, deadline - time.monotonic())))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


_WATCHED = ("open", "write", "close", "replace", "unlink", "rename", "fsync", "utime")


@contextlib.contextmanager
def _watching(on_call: Callable[[], None]) -> Iterator[None]:
    """Call ``on_call`` before each file-system call among :data:`_WATCHED` of this process."""
    originals = {name: getattr(os, name) for name in _WATCHED}

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def watched(*args: Any, **kwargs: Any) -> Any:
            on_call()
            return original(*args, **kwargs)

        return watched

    for name in _WATCHED:
        setattr(os, name, wrap(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(os, name, original)


@contextlib.contextmanager
def kill_at_call(number: int) -> Iterator[None]:
    """SIGKILL this process at its ``number``-th file-system call among :data:`_WATCHED`.

    Used in a forked child: it enumerates crash points through the write path (lock
    creation, entry writes, renames, lock release) deterministically.
    """
    count = [0]

    def on_call() -> None:
        count[0] += 1
        if count[0] == number:
            os.kill(os.getpid(), signal.SIGKILL)

    with _watching(on_call):
        yield


def count_calls(target: Callable[[], None]) -> int:
    """Return how many watched file-system calls ``target`` makes (run in a forked child)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            count = [0]
            with _watching(lambda: count.__setitem__(0, count[0] + 1)):
                target()
            os.write(write, str(count[0]).encode())
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
        raise RuntimeError("the counting child failed")
    return int(text)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative, for before/after comparisons."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@operation
def counted(context: Any, params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Like :func:`noisy`, leaving a file per computation in ``context["side_effects"]``."""
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
