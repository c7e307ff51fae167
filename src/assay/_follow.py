"""A run's live metrics, driver side: read the runs' streams, tell runs to stop early.

``Follower`` reads what each run appended to its ``live.jsonl`` since the last read, hands the
values to a ``Pruner`` and writes the marker file ``prune`` of each run the pruner stops.
``LiveSession`` is what a sweep wraps around its runs: it registers the pruner for the runs in
this process (they ask it directly, see ``_live``) and, when runs run elsewhere, polls their
streams from a background thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from ._live import MARKER, STREAM, as_float, register

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from types import TracebackType

_LOGGER = logging.getLogger("assay.live")
#: Seconds between two reads of the streams of runs in other processes.
POLL_INTERVAL = 0.2
#: How the last line of a stream starts: the run ended (``RunStream.close``).
_END = b'{"end": true'


@runtime_checkable
class Pruner(Protocol):
    """What decides which runs stop early, from the metric values they report as they run.

    ``report`` takes each value a run streams (numbers only, as floats), ``should_prune``
    answers for one run, ``finished`` says a run ended (however it ended). An implementation
    may be called from several threads at once. ``assay.MedianRule`` is one.

    Examples:
        >>> class AfterThreeSteps:
        ...     def __init__(self): self.steps = {}
        ...     def report(self, run_id, name, value, step):
        ...         self.steps[run_id] = self.steps.get(run_id, 0) + 1
        ...     def should_prune(self, run_id): return self.steps.get(run_id, 0) >= 3
        ...     def finished(self, run_id): pass
        >>> isinstance(AfterThreeSteps(), Pruner)
        True

    """

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        """Take one value of metric ``name`` of run ``run_id`` (``step`` None when not given)."""

    def should_prune(self, run_id: str) -> bool:
        """Return whether run ``run_id`` should stop now."""

    def finished(self, run_id: str) -> None:
        """Note that run ``run_id`` ended."""


class LivePoint(NamedTuple):
    """One streamed value: its run, metric name, value, step (or None) and unix time."""

    run_id: str
    name: str
    value: int | float | str
    step: int | None
    t: float


def _point(run_id: str, line: bytes) -> LivePoint | None:
    """Return the point a stream's line holds, or None for a line that is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    name, value, step, t = data.get("name"), data.get("value"), data.get("step"), data.get("t")
    if not isinstance(name, str) or isinstance(value, bool) or isinstance(step, bool):
        return None
    if not isinstance(value, (int, float, str)) or not isinstance(step, (int, type(None))):
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        value = float(value)  # written as strings: JSON has no such numbers
    return LivePoint(run_id, name, value, step, float(t))


def write_marker(run_dir: str | os.PathLike[str]) -> None:
    """Tell the run of ``run_dir`` to stop: write its marker file atomically.

    Examples:
        >>> run_dir = os.path.join("marked", "runs", "r1")
        >>> write_marker(run_dir)
        >>> os.listdir(run_dir)
        ['prune']

    """
    os.makedirs(run_dir, exist_ok=True)
    target = os.path.join(run_dir, MARKER)
    temporary = os.path.join(run_dir, f".{MARKER}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"t": round(time.time(), 3)}, file)
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


class Follower:
    r"""Read the new lines of runs' streams; feed a pruner; write the markers of pruned runs.

    Each ``poll`` reads, for each run asked about, the whole lines appended to
    ``<runs_folder>/<run_id>/live.jsonl`` since the previous poll: a trailing partial line
    is left for the next poll, a missing file is no line, and a line that is not a stream's
    (a damaged file) is skipped and counted in ``corrupt``. With a ``pruner``, every numeric
    value read is reported to it, then each run that reported asks it ``should_prune``: a
    run it stops gets its marker file (once). Not thread-safe: one caller at a time.

    Args:
        runs_folder: The experiment's ``runs`` folder.
        pruner: What decides which runs stop, or None to read the streams only.

    Examples:
        >>> runs = os.path.join("followed", "runs")
        >>> os.makedirs(os.path.join(runs, "r1"))
        >>> with open(os.path.join(runs, "r1", "live.jsonl"), "w") as file:
        ...     _ = file.write('{"name": "loss", "value": 0.5, "step": 0, "t": 1.0}\n{"na')
        >>> follower = Follower(runs)
        >>> [(p.name, p.value, p.step) for p in follower.poll(["r1", "r2"])]
        [('loss', 0.5, 0)]
        >>> follower.poll(["r1"])  # the partial line waits until it is whole
        []

    """

    def __init__(self, runs_folder: str | os.PathLike[str], pruner: Pruner | None = None) -> None:
        self.runs_folder = os.fspath(runs_folder)
        self.pruner = pruner
        #: Lines skipped because they were not a stream's (damaged files).
        self.corrupt = 0
        #: Runs whose stream says they ended.
        self.ended: set[str] = set()
        self._offsets: dict[str, int] = {}
        self._marked: set[str] = set()

    def run_dir(self, run_id: str) -> str:
        """Return the directory of run ``run_id``."""
        return os.path.join(self.runs_folder, run_id)

    def poll(self, run_ids: Iterable[str]) -> list[LivePoint]:
        """Return the points the runs ``run_ids`` streamed since the last poll, in file order."""
        points: list[LivePoint] = []
        for run_id in run_ids:
            new = self._read(run_id)
            points += new
            if self.pruner is not None and (new or run_id in self.ended):
                self._feed(run_id, new)
        return points

    def _read(self, run_id: str) -> list[LivePoint]:
        path = os.path.join(self.runs_folder, run_id, STREAM)
        offset = self._offsets.get(run_id, 0)
        try:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size < offset:
                    offset = 0  # the file was replaced by a shorter one: read it anew
                file.seek(offset)
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # only whole lines; a partial one is read next time
        self._offsets[run_id] = offset + end
        points = []
        for line in data[:end].splitlines():
            point = _point(run_id, line)
            if point is not None:
                points.append(point)
            elif line.startswith(_END):  # the run ended (its stream's last line)
                self.ended.add(run_id)
            else:
                self.corrupt += 1
        return points

    def _feed(self, run_id: str, points: list[LivePoint]) -> None:
        assert self.pruner is not None
        fed = False
        for point in points:
            number = as_float(point.value)
            if number is not None:
                self.pruner.report(run_id, point.name, number, point.step)
                fed = True
        if run_id in self.ended:
            self.pruner.finished(run_id)
        elif fed and run_id not in self._marked and self.pruner.should_prune(run_id):
            write_marker(self.run_dir(run_id))
            self._marked.add(run_id)

    def forget(self, run_ids: Iterable[str]) -> None:
        """Drop what is kept about the runs ``run_ids`` (a later poll reads them from the start)."""
        for run_id in run_ids:
            self._offsets.pop(run_id, None)
            self._marked.discard(run_id)
            self.ended.discard(run_id)


class _InProcess:
    """The pruner as the runs of this process reach it; notes which runs reported here."""

    def __init__(self, pruner: Pruner) -> None:
        self.pruner = pruner
        self.runs: set[str] = set()

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        self.runs.add(run_id)  # before the line is written: the follower skips it
        self.pruner.report(run_id, name, value, step)

    def should_prune(self, run_id: str) -> bool:
        return self.pruner.should_prune(run_id)

    def finished(self, run_id: str) -> None:
        self.pruner.finished(run_id)


class _FromFiles:
    """The pruner as the follower reaches it: the runs that reported in-process are left out."""

    def __init__(self, here: _InProcess) -> None:
        self.here = here

    def report(self, run_id: str, name: str, value: float, step: int | None) -> None:
        if run_id not in self.here.runs:
            self.here.pruner.report(run_id, name, value, step)

    def should_prune(self, run_id: str) -> bool:
        return run_id not in self.here.runs and self.here.pruner.should_prune(run_id)

    def finished(self, run_id: str) -> None:
        if run_id not in self.here.runs:  # told in-process already
            self.here.pruner.finished(run_id)


class LiveSession:
    """Early stopping around a sweep's runs: the pruner hears every run, wherever it runs.

    On entry, ``pruner`` is registered for the runs of ``runs_folder`` in this process
    (inline and thread runs ask it directly, at each value). With ``out_of_process``, a
    daemon thread also reads the streams of the followed runs every ``interval`` seconds,
    reports their values to the pruner and writes the marker of each run it stops. A run's
    values reach the pruner once, by one of the two ways. On exit, the thread is stopped and
    joined, and the streams are read a last time.

    Tell the session which runs are about to run with ``follow`` (a previous attempt's stream
    and marker of those runs are removed then), and which ended with ``ended`` (their streams
    are read to the end, then ``pruner.finished`` is called). Thread-safe.

    Args:
        runs_folder: The experiment's ``runs`` folder.
        pruner: What decides which runs stop (a [`MedianRule`][assay.MedianRule], say).
        out_of_process: Whether runs run in other processes (a pool, batch jobs).
        interval: Seconds between two reads of the streams.

    Examples:
        >>> from assay._live import live_channel
        >>> from assay._median import MedianRule
        >>> runs = os.path.join("session", "runs")
        >>> with LiveSession(runs, MedianRule("loss", n_startup_runs=1), False) as session:
        ...     session.follow(["a", "b"])
        ...     for run_id, loss in (("a", 0.1), ("b", 0.9)):
        ...         with live_channel(runs, run_id) as stream:
        ...             stream.report("loss", loss, 0)
        ...             pruned = stream.should_prune()
        ...         session.ended([run_id])
        ...         print(run_id, pruned)
        a False
        b True

    """

    def __init__(
        self,
        runs_folder: str | os.PathLike[str],
        pruner: Pruner,
        out_of_process: bool,
        *,
        interval: float = POLL_INTERVAL,
    ) -> None:
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"LiveSession(interval={interval!r}): expected seconds > 0")
        self.runs_folder = os.fspath(runs_folder)
        self.pruner = pruner
        self.out_of_process = out_of_process
        self.interval = float(interval)
        self._here = _InProcess(pruner)
        self.follower = Follower(self.runs_folder, _FromFiles(self._here))
        self._followed: dict[str, None] = {}  # ordered set: the runs the thread reads
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registration = ExitStack()

    def __enter__(self) -> LiveSession:
        self._registration.enter_context(register(self.runs_folder, self._here))
        if self.out_of_process:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="assay-live", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                self._thread = None
                self._poll()  # what the runs wrote since the thread's last read
        finally:
            self._registration.close()

    def follow(self, run_ids: Iterable[str]) -> None:
        """Follow the runs ``run_ids``, about to run: a previous attempt's stream is removed."""
        with self._lock:
            for run_id in run_ids:
                run_dir = self.follower.run_dir(run_id)
                for name in (STREAM, MARKER):
                    with suppress(OSError):
                        os.unlink(os.path.join(run_dir, name))
                self.follower.forget([run_id])
                self._followed[run_id] = None

    def ended(self, run_ids: Iterable[str]) -> None:
        """Note that the runs ``run_ids`` ended: read their streams to the end, tell the pruner."""
        ended = list(run_ids)
        with self._lock:
            if self.out_of_process:
                self.follower.poll([r for r in ended if r in self._followed])
            for run_id in ended:
                self.pruner.finished(run_id)
                self._followed.pop(run_id, None)
            self.follower.forget(ended)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        try:
            with self._lock:
                self.follower.poll(list(self._followed))
        except Exception:  # a failing pruner must not stop the sweep: its runs just go on
            _LOGGER.warning("reading the runs' live metrics failed", exc_info=True)
