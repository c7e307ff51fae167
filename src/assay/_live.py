"""A run's live metrics, worker side: the stream it appends to and whether it should stop.

While a run runs, each metric value it records is appended to ``<run_dir>/live.jsonl``, one
JSON object a line: ``{"name": ..., "value": ..., "step": ..., "t": ...}`` (``t`` in unix
seconds). Only numbers and strings are streamed: numpy scalars as their Python value, a
non-finite float as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no such numbers),
a bool as 0 or 1; arrays are not streamed. Each line is written with one ``write`` in append
mode, so a reader, on this host or another one sharing the file system, sees whole lines (it
leaves a trailing partial line for its next read).

Whether a run should stop early (be pruned) is decided by the driver. A run in the driver's
own process (inline, threads) asks the decider the driver registered with ``register``
directly; a run elsewhere (a process pool, a batch job) looks for the marker file
``<run_dir>/prune`` the driver writes. The in-process deciders are keyed by process id, so a
forked child never asks its parent's copy: it reads the marker.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from types import TracebackType

    from ._follow import Pruner

#: The stream of a run's metrics, in its run directory.
STREAM = "live.jsonl"
#: The marker file whose existence tells a run to stop early.
MARKER = "prune"
#: Least time between two looks for the marker file: asking often costs no more than this.
MARKER_PERIOD = 0.05

_NON_FINITE = {math.inf: "inf", -math.inf: "-inf"}

#: In-process deciders by (process id, real path of the runs folder).
_DECIDERS: dict[tuple[int, str], Pruner] = {}
_LOCK = threading.Lock()


def _new_lock() -> None:
    # A fork while another thread held the lock would leave the child's copy held forever.
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX: where processes fork
    os.register_at_fork(after_in_child=_new_lock)


def _folder_key(runs_folder: str | os.PathLike[str]) -> tuple[int, str]:
    return os.getpid(), os.path.realpath(runs_folder)


@contextmanager
def register(runs_folder: str | os.PathLike[str], decider: Pruner) -> Iterator[Pruner]:
    """Let the runs of ``runs_folder`` in this process ask ``decider`` whether to stop.

    Registered for this process only: a child forked inside the block does not see it (its
    runs read the marker files instead). Registered until the block ends.

    Raises:
        ValueError: a decider is already registered for this folder in this process.

    Examples:
        >>> class StopAll:
        ...     def report(self, run_id, name, value, step): pass
        ...     def should_prune(self, run_id): return True
        ...     def finished(self, run_id): pass
        >>> runs = os.path.join("registered", "runs")
        >>> stream = RunStream(os.path.join(runs, "r1"), "r1")
        >>> with register(runs, StopAll()):
        ...     stream.should_prune()
        True

    """
    key = _folder_key(runs_folder)
    with _LOCK:
        if key in _DECIDERS:
            raise ValueError(
                f"runs_folder={os.fspath(runs_folder)!r} already has a decider registered in "
                "this process; expected one live session per experiment folder at a time"
            )
        _DECIDERS[key] = decider
    try:
        yield decider
    finally:
        with _LOCK:
            _DECIDERS.pop(key, None)


def _registered(key: tuple[int, str]) -> Pruner | None:
    if key[0] != os.getpid():  # a forked child: its parent's decider is not its own
        return None
    return _DECIDERS.get(key)  # one dict read: atomic, no lock needed


def streamable(value: Any) -> int | float | str | None:
    """Return ``value`` as it is streamed (a JSON number or string), or None when it is not.

    Examples:
        >>> streamable(0.5), streamable(float("nan")), streamable(True), streamable([1, 2])
        (0.5, 'nan', 1, None)

    """
    kind = type(value)
    if kind is float:
        number = float(value)
        return number if math.isfinite(number) else _NON_FINITE.get(number, "nan")
    if kind is int:
        return int(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return int(value)
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        plain = value.item()  # a numpy scalar (or 0-d array): its Python value
        return None if type(plain).__module__ == "numpy" else streamable(plain)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Real):  # Fraction, Decimal...: a float is what a curve needs
        return streamable(float(value))
    return None


def as_float(value: int | float | str) -> float | None:
    """Return a streamed value as the float a pruner takes, or None (a plain string).

    Examples:
        >>> as_float(3), as_float("-inf"), as_float("adam")
        (3.0, -inf, None)

    """
    if isinstance(value, str):
        return float(value) if value in ("nan", "inf", "-inf") else None
    return float(value)


class RunStream:
    """The live channel of one run: its metric stream and whether it should stop early.

    ``report`` appends a line to ``<run_dir>/live.jsonl`` for each value recorded with a
    step (the file is opened on the first value, the run directory made if missing, and
    kept open until ``close``) and, when the driver registered a decider for this process,
    hands it the value too. ``should_prune`` asks that decider, or else looks for the marker
    file ``<run_dir>/prune`` (at most once every ``MARKER_PERIOD`` seconds); once True, it
    stays True. An object of this class is an ``assay_ops.LiveChannel``.

    Args:
        run_dir: The run's directory, ``<experiment folder>/runs/<run_id>``.
        run_id: The run's id.

    Raises:
        OSError: from ``report``, when the stream cannot be written (a full disk).

    Examples:
        >>> run_dir = os.path.join("streamed", "runs", "r1")
        >>> with RunStream(run_dir, "r1") as stream:
        ...     stream.report("loss", 0.5, 1)
        ...     stream.should_prune()
        False
        >>> first, last = open(os.path.join(run_dir, "live.jsonl")).read().splitlines()
        >>> value = json.loads(first)
        >>> value["name"], value["value"], value["step"], json.loads(last)["end"]
        ('loss', 0.5, 1, True)

    """

    def __init__(self, run_dir: str, run_id: str) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.path = os.path.join(run_dir, STREAM)
        self.marker = os.path.join(run_dir, MARKER)
        self._key: tuple[int, str] | None = None  # made when a decider may be registered
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._pruned = False
        self._looked = -math.inf

    def __repr__(self) -> str:
        return f"RunStream({self.run_dir!r}, {self.run_id!r})"

    def report(self, name: str, value: Any, step: int | None) -> None:
        """Append one value of metric ``name`` at ``step`` to the stream.

        Only values recorded with a step are streamed: they are a curve, which the driver
        and ``assay status --watch`` follow. A value without a step is a result, read from
        the run's record when it ends; not streaming it spares a sweep of many small runs a
        file per run. Arrays are not streamed either.
        """
        plain = streamable(value)
        if plain is None or step is None:
            return
        step = int(step)
        decider = self._decider()
        try:
            # The decider first: a driver that also reads the file knows by then that this
            # run reports in-process, and does not take the line a second time.
            number = None if decider is None else as_float(plain)
            if number is not None and decider is not None:
                decider.report(self.run_id, name, number, step)
        finally:
            line = {"name": name, "value": plain, "step": step, "t": round(time.time(), 3)}
            self._write((json.dumps(line, separators=(",", ":")) + "\n").encode())

    def _decider(self) -> Pruner | None:
        """Return the decider registered for this run's folder in this process, if any.

        Every run of a sweep makes a stream: with no decider registered anywhere (a sweep
        without a pruner) the folder's real path is never resolved.
        """
        if not _DECIDERS:
            return None
        if self._key is None:
            self._key = _folder_key(os.path.dirname(os.path.abspath(self.run_dir)))
        return _registered(self._key)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                os.makedirs(self.run_dir, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self.path, flags, 0o666)
            view = memoryview(data)
            while view:  # one write in practice; a short write is finished, never dropped
                view = view[os.write(self._fd, view) :]

    def should_prune(self) -> bool:
        """Return whether the run should stop now; once True, always True."""
        if self._pruned:
            return True
        decider = self._decider()
        if decider is not None:
            self._pruned = bool(decider.should_prune(self.run_id))
            return self._pruned
        now = time.monotonic()
        if now - self._looked >= MARKER_PERIOD:
            self._looked = now
            self._pruned = os.path.exists(self.marker)
        return self._pruned

    def close(self) -> None:
        """Say that the run ended, and close the stream's file (a later ``report`` reopens it).

        A stream that was written ends with the line ``{"end": true, ...}``, so that a driver
        following it from another process knows the run ended (a pruner counts ended runs);
        a decider in this process is told directly.
        """
        decider = self._decider()
        if decider is not None:
            decider.finished(self.run_id)
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    os.write(
                        fd, (json.dumps({"end": True, "t": round(time.time(), 3)}) + "\n").encode()
                    )
                finally:
                    os.close(fd)

    def __enter__(self) -> RunStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def live_channel(runs: str | None, run_id: str) -> RunStream | None:
    """Return the live channel of run ``run_id`` of the runs folder ``runs`` (None without one).

    Examples:
        >>> live_channel(None, "r1") is None
        True
        >>> live_channel("/tmp/exp/runs", "r1")
        RunStream('/tmp/exp/runs/r1', 'r1')

    """
    if runs is None:
        return None
    return RunStream(f"{runs}{os.sep}{run_id}", run_id)
