"""Capture: what an operation records while it runs (metrics, messages, artifacts)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from assay_context import ArtifactLog, FrozenMetrics

from ._artifactfiles import Sink, remove_stale_temporaries, serialise, write_artifact
from ._live import LiveChannel

_LOGGER = logging.getLogger("assay_ops.capture")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_LEAVES = frozenset({str, int, float, bool, type(None)})
_FORMATS = {"bytes": "binary", "text": "text", "path": "file", "array": "npy", "object": "pickle"}


def thaw(value: Any) -> Any:
    """Return plain dicts and lists for the read-only ones the context layer hands out."""
    if type(value) in _LEAVES:  # the common case, by exact type: no abstract-class check
        return value
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):  # a context's read-only list: recorded as a plain one
        return [thaw(item) for item in value]
    if isinstance(value, tuple):
        return tuple(thaw(item) for item in value)
    return value


class Capture:
    """The recording side of a run: metrics, log messages and artifacts.

    Metrics go into an ``assay_context.FrozenMetrics`` and artifacts into an
    ``assay_context.ArtifactLog`` (the same objects a ``FrozenContext`` carries), so
    ``context.record(...)`` inside an operation and ``capture.metric(...)`` land in the same
    place. With an ``artifact_dir``, each artifact is also written there as a file named after
    it, the moment it is captured. With a ``live`` channel, each metric recorded through
    ``metric()`` is also reported there as it is recorded, and ``should_prune()`` asks it
    whether the run should stop early.

    Args:
        metrics: Where metrics go (a new ``FrozenMetrics`` by default).
        artifacts: Where artifacts go (a new ``ArtifactLog`` by default).
        artifact_dir: Folder to write artifact files to, or ``None`` to keep them in memory only.
        logger: Logger that ``log()`` also forwards messages to.
        live: A [`LiveChannel`][assay_ops.LiveChannel] to report metrics to while the run
            runs, or ``None``. A pickled or deep copy of the capture has none: what it
            records never reaches the run's record, so it is not streamed either.

    Examples:
        >>> capture = Capture()
        >>> capture.metric("loss", 0.5, step=1)
        >>> capture.metric("loss", 0.25, step=2)
        >>> capture.metrics.as_dict()["loss"]
        (0.5, 0.25)
        >>> capture.metrics.get_tags("loss")[1].get("step")
        2

    """

    def __init__(
        self,
        metrics: FrozenMetrics | None = None,
        artifacts: ArtifactLog | None = None,
        *,
        artifact_dir: str | Path | None = None,
        logger: logging.Logger | None = None,
        live: LiveChannel | None = None,
    ) -> None:
        # What isinstance(live, LiveChannel) checks, and callable, without its cost (µs a run).
        if live is not None and not (
            callable(getattr(live, "report", None))
            and callable(getattr(live, "should_prune", None))
        ):
            raise TypeError(
                f"live={live!r}: expected a LiveChannel (an object with report(name, value, "
                "step) and should_prune() methods) or None"
            )
        self._live = live
        self._pruned = False
        self._live_failed = False
        self.metrics = FrozenMetrics() if metrics is None else metrics
        self.artifacts = ArtifactLog() if artifacts is None else artifacts
        self._artifact_dir_raw: str | Path | None = None
        self._artifact_dir: Path | None = None
        self.artifact_dir = artifact_dir
        self.logger = _LOGGER if logger is None else logger
        self.logs: list[str] = []
        self._written: dict[str, dict[str, Any]] = {}

    @property
    def artifact_dir(self) -> Path | None:
        """Folder the artifact files are written to, or None (kept in memory only)."""
        if self._artifact_dir is None and self._artifact_dir_raw is not None:
            self._artifact_dir = Path(self._artifact_dir_raw)  # built on first use only
        return self._artifact_dir

    @artifact_dir.setter
    def artifact_dir(self, value: str | Path | None) -> None:
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"artifact_dir={value!r}: expected a str or Path, or None")
        self._artifact_dir_raw = value
        self._artifact_dir = None
        self._swept = False

    def remove_stale_temporaries(self) -> int:
        """Remove what killed writers left in the artifact folder, once; return how many.

        Temporary files of artifacts (``.<name>.<pid>.tmp``) untouched for
        ``STALE_TEMPORARY_SECONDS`` (an hour) are removed; a writer still at work keeps its
        file. Called before the first artifact is written, and when a run starts.
        """
        folder = self.artifact_dir
        if folder is None or self._swept:
            return 0
        self._swept = True
        return remove_stale_temporaries(folder)

    @classmethod
    def for_context(
        cls,
        context: Any,
        *,
        artifact_dir: str | Path | None = None,
        live: LiveChannel | None = None,
    ) -> Capture:
        """Return a capture recording into ``context.metrics`` and ``context.artifacts``."""
        return cls(
            context.metrics,
            context.artifacts,
            artifact_dir=artifact_dir,
            logger=context.logger,
            live=live,
        )

    @property
    def live(self) -> LiveChannel | None:
        """The channel metrics are reported to as they are recorded, or None."""
        return self._live

    @property
    def pruned(self) -> bool:
        """Whether ``should_prune()`` has returned True: the run was told to stop early."""
        return self._pruned

    def should_prune(self) -> bool:
        """Return whether the run should stop early, as the live channel decides.

        An operation that supports early stopping asks this now and then (after reporting a
        step's metrics, say) and returns when it is True; its record then has the status
        ``"pruned"`` and keeps the metrics recorded so far. Without a live channel the answer
        is always False. Once True, it stays True and ``pruned`` is set. A channel that raises
        does not end the run: a warning is logged (once) and the answer is False.

        Examples:
            >>> class AfterTwoSteps:
            ...     def __init__(self):
            ...         self.steps = 0
            ...     def report(self, name, value, step):
            ...         self.steps += 1
            ...     def should_prune(self):
            ...         return self.steps >= 2
            >>> capture = Capture(live=AfterTwoSteps())
            >>> for step in range(5):
            ...     capture.metric("loss", 1.0 / (step + 1), step=step)
            ...     if capture.should_prune():
            ...         break
            >>> capture.metrics.as_dict()["loss"], capture.pruned
            ((1.0, 0.5), True)
            >>> Capture().should_prune()
            False

        """
        if self._pruned:
            return True
        if self._live is None:
            return False
        try:
            answer = bool(self._live.should_prune())
        except Exception as error:
            self._channel_failed("should_prune()", error)
            return False
        self._pruned = answer
        return answer

    def _channel_failed(self, call: str, error: Exception) -> None:
        """Say once that the live channel failed; the run goes on and keeps its record."""
        # A stream that cannot be written (a full disk, a lost mount) costs the watchers their
        # view of the run, not the run: the record still gets every metric.
        if self._live_failed:
            return
        self._live_failed = True
        self.log(
            f"live channel {type(self._live).__qualname__}.{call} failed "
            f"({type(error).__qualname__}: {error}); the run goes on and its record keeps "
            "every metric, but what watches it live may miss values (warned once per run)",
            "warning",
        )

    def __getstate__(self) -> dict[str, Any]:
        # A pickled or deep copy records into its own metrics, which never reach the run's
        # record: it does not stream them (and a channel holding an open file need not pickle).
        state = self.__dict__.copy()
        state["_live"] = None
        return state

    def __copy__(self) -> Capture:
        # A shallow copy records into the same metrics as this capture: it streams them too.
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def metric(
        self,
        name: str,
        value: Any,
        step: int | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one value of metric ``name``.

        Args:
            name: Identifier-like metric name (``"loss"``, ``"val.accuracy"``).
            value: A number, a string, or a numpy scalar or array.
            step: Optional step (epoch, iteration); kept as the ``"step"`` tag.
            tags: Optional mapping describing the measurement; returned by ``get_tags``.

        Once recorded, the value is reported to the live channel, if any (a refused value is
        not). A channel that raises does not fail the run: the value stays recorded and a
        warning is logged, once per capture.

        Raises:
            TypeError: For a value or tags of the wrong type (raised by ``FrozenMetrics``).
            ValueError: For a bad name, or a ``step`` that is not an int or that disagrees
                with a ``"step"`` tag.

        """
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
                raise ValueError(f"metric {name!r}: step={step!r}: expected an int or None")
            if tags is not None and "step" in tags and tags["step"] != step:
                raise ValueError(
                    f"metric {name!r}: step={step!r} disagrees with tags['step']={tags['step']!r}"
                )
            step = int(step)
            tags = {**(tags or {}), "step": step}
        self.metrics.add(name, value, tags)
        if self._live is not None:  # only a value the metrics accepted is reported
            try:
                self._live.report(name, value, step)
            except Exception as error:
                self._channel_failed(f"report({name!r}, ..., step={step!r})", error)

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Record several metrics at once (``name -> value``), with an optional common step."""
        for name, value in values.items():
            self.metric(name, value, step=step)

    def log(self, message: str, level: str = "info") -> None:
        """Keep a message in the run's record and forward it to the logger.

        Args:
            message: The text.
            level: ``"debug"``, ``"info"``, ``"warning"`` or ``"error"``.

        """
        number = _LEVELS.get(level)
        if number is None:
            raise ValueError(f"level={level!r}: expected one of {sorted(_LEVELS)}")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.logs.append(f"{stamp} {level.upper()} {message}")
        self.logger.log(number, "%s", message)

    def artifact(
        self, name: str, obj: Any, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Keep an artifact: bytes, text, a path to a file, a numpy array or a picklable object.

        Args:
            name: A plain file name (no separators, no ``..``), unique within the run.
            obj: The artifact.
            metadata: Optional mapping describing it.

        Returns:
            The artifact's description as it appears in the run record.

        Raises:
            ValueError: For an unsafe name. ``ContextMutationError``: for a name used twice.
            TypeError: For an object that cannot be pickled.
            FileNotFoundError: For a path that is not an existing file.

        """
        self.artifacts.add(name, obj, metadata)
        record = self.artifacts[name]
        folder = self.artifact_dir
        if folder is None:
            description = self._describe(record)
        else:
            target = folder / name
            folder.mkdir(parents=True, exist_ok=True)
            self.remove_stale_temporaries()
            # One pass writes and hashes; a file is copied, so a file made in the scratch folder
            # survives the run.
            description = self._describe(record, write_artifact(record.kind, record.data, target))
            description["path"] = str(target)
        self._written[name] = description
        return dict(description)

    def file(
        self, name: str, path: str | Path, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Keep an existing file as an artifact (same as ``artifact(name, Path(path))``)."""
        return self.artifact(name, Path(path), metadata)

    @staticmethod
    def _describe(record: Any, written: Sink | None = None) -> dict[str, Any]:
        sink = written
        if sink is None:
            try:
                sink = Sink()
                serialise(record.kind, record.data, sink)
            except OSError:
                sink = None  # a file kept by reference that has gone since
        description: dict[str, Any] = {
            "name": record.name,
            "kind": record.kind,
            "format": _FORMATS.get(record.kind, record.kind),
            "size": None if sink is None else sink.size,
            "sha256": None if sink is None else sink.sha256,
            "metadata": thaw(record.metadata),
        }
        if record.kind == "path":
            description["source"] = str(record.data)
        return description

    def artifact_descriptions(self) -> list[dict[str, Any]]:
        """Describe every artifact in the log, in order (for the run record)."""
        return [
            dict(self._written[r.name]) if r.name in self._written else self._describe(r)
            for r in self.artifacts
        ]

    def metric_series(self) -> tuple[dict[str, list[Any]], dict[str, list[dict[str, Any]]]]:
        """Return the metrics as ``name -> values`` and ``name -> tags``, as plain containers."""
        metrics = self.metrics
        values, tags = {}, {}
        for name in metrics:  # read series by series: no snapshot of the whole mapping
            values[name] = list(metrics[name])
            tags[name] = [thaw(t) if t else {} for t in metrics.get_tags(name)]
        return values, tags
