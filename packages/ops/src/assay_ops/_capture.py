"""Capture: what an operation records while it runs (metrics, messages, artifacts)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from assay_context import ArtifactLog, FrozenMetrics

from ._jsonvalue import write_atomic

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
    """Return plain dicts for the read-only mappings the context layer hands out."""
    if type(value) in _LEAVES:  # the common case, by exact type: no abstract-class check
        return value
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(thaw(item) for item in value)
    return value


def _payload(kind: str, data: Any) -> bytes:
    """Return the bytes an artifact is stored as, by kind."""
    if kind == "bytes":
        return bytes(data)
    if kind == "text":
        return str(data).encode("utf-8")
    if kind == "path":
        return Path(data).read_bytes()
    if kind == "array":
        buffer = io.BytesIO()
        np.save(buffer, data, allow_pickle=False)
        return buffer.getvalue()
    return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)


class Capture:
    """The recording side of a run: metrics, log messages and artifacts.

    Metrics go into an ``assay_context.FrozenMetrics`` and artifacts into an
    ``assay_context.ArtifactLog`` (the same objects a ``FrozenContext`` carries), so
    ``context.record(...)`` inside an operation and ``capture.metric(...)`` land in the same
    place. With an ``artifact_dir``, each artifact is also written there as a file named after
    it, the moment it is captured.

    Args:
        metrics: Where metrics go (a new ``FrozenMetrics`` by default).
        artifacts: Where artifacts go (a new ``ArtifactLog`` by default).
        artifact_dir: Folder to write artifact files to, or ``None`` to keep them in memory only.
        logger: Logger that ``log()`` also forwards messages to.

    Example:
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
    ) -> None:
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

    @classmethod
    def for_context(cls, context: Any, *, artifact_dir: str | Path | None = None) -> Capture:
        """Return a capture recording into ``context.metrics`` and ``context.artifacts``."""
        return cls(
            context.metrics, context.artifacts, artifact_dir=artifact_dir, logger=context.logger
        )

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
            tags = {**(tags or {}), "step": int(step)}
        self.metrics.add(name, value, tags)

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
        description = self._describe(record)
        folder = self.artifact_dir
        if folder is not None:
            target = folder / name
            folder.mkdir(parents=True, exist_ok=True)
            if record.kind == "path":
                # Copied, so a file made in the scratch folder survives the run.
                shutil.copyfile(record.data, target)
            else:
                write_atomic(target, _payload(record.kind, record.data))
            description["path"] = str(target)
        self._written[name] = description
        return dict(description)

    def file(
        self, name: str, path: str | Path, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Keep an existing file as an artifact (same as ``artifact(name, Path(path))``)."""
        return self.artifact(name, Path(path), metadata)

    @staticmethod
    def _describe(record: Any) -> dict[str, Any]:
        try:
            payload: bytes | None = _payload(record.kind, record.data)
        except OSError:
            payload = None  # a file kept by reference that has gone since
        description: dict[str, Any] = {
            "name": record.name,
            "kind": record.kind,
            "format": _FORMATS.get(record.kind, record.kind),
            "size": None if payload is None else len(payload),
            "sha256": None if payload is None else hashlib.sha256(payload).hexdigest(),
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
