"""ArtifactLog: named artifacts (bytes, files, arrays, objects) with metadata, in order."""

from __future__ import annotations

import ntpath
import os
import pickle
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._errors import ContextMutationError
from ._freeze import (
    Unfreezable,
    _numpy,
    freeze_array,
    freeze_value,
    is_masked,
)
from ._frozen import FrozenDict

ArtifactKind = Literal["bytes", "text", "path", "array", "object"]

_SEPARATORS = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}

#: Longest artifact name, in bytes of the file system encoding: file names take 255 bytes, and
#: a writer saves an artifact through the temporary name ``.<name>.<pid>.tmp`` (up to 15 more).
MAX_ARTIFACT_NAME_BYTES = 240
#: What a writer's temporary file is named: such a file left over by a killed writer is removed.
_TEMPORARY = re.compile(r"\..+\.[0-9]+\.tmp", re.DOTALL)


def check_artifact_name(name: object) -> str:
    """Return ``name`` if it is safe as a single file name, else raise a clear error."""
    if not isinstance(name, str):
        raise TypeError(
            f"artifact name {name!r} has type {type(name).__qualname__}; expected a str"
        )
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif name in {".", ".."}:
        problem = "it refers to a directory"
    elif ".." in name:
        problem = "it contains '..'"
    elif any(separator in name for separator in _SEPARATORS):
        problem = "it contains a path separator"
    elif ntpath.splitdrive(name)[0]:
        problem = "it starts with a drive"
    elif "\0" in name:
        problem = "it contains a NUL character"
    elif _TEMPORARY.fullmatch(name):
        problem = (
            "it has the form of a temporary file ('.<name>.<digits>.tmp'), which is removed "
            "when left over"
        )
    if problem:
        raise ValueError(
            f"artifact name {name!r} is not valid: {problem}; expected a plain file name "
            "such as 'model.pkl' (no path separators, no '..', not empty)"
        )
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        raise ValueError(
            f"artifact name {name!r} cannot be encoded as a file name "
            f"({sys.getfilesystemencoding()}); expected a name of encodable characters"
        ) from None
    if size > MAX_ARTIFACT_NAME_BYTES:
        raise ValueError(
            f"artifact name {name!r} is {size} bytes in the file system encoding; expected at "
            f"most {MAX_ARTIFACT_NAME_BYTES} bytes (file names take 255 bytes, and writing one "
            "through a temporary name adds up to 15)"
        )
    return name


@dataclass(frozen=True, eq=False)
class ArtifactRecord:
    """One artifact in an `ArtifactLog`.

    Attributes:
        name: The artifact's file name, validated to be a single safe path component.
        data: ``bytes`` for bytes-like data, ``str`` for text, an absolute
            `pathlib.Path` for a file, a read-only numpy array, or a private copy of
            any other picklable object.
        step_name: Name of the step that produced it (empty when not given).
        kind: One of ``"bytes"``, ``"text"``, ``"path"``, ``"array"``, ``"object"``: tells a
            writer how to save ``data``.
        metadata: Read-only mapping of what was recorded with the artifact.

    Records compare by value, as the reference's dataclass records do: every field, with
    arrays compared by dtype, shape and content. Like those, they cannot be hashed.

    """

    name: str
    data: Any
    step_name: str = ""
    kind: ArtifactKind = "bytes"
    metadata: Mapping[str, Any] = field(default_factory=FrozenDict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArtifactRecord):
            return NotImplemented
        # The generated __eq__ would compare arrays element-wise, whose truth is ambiguous.
        return _row(self) == _row(other)

    __hash__ = None  # type: ignore[assignment]


def _prepare(name: str, data: Any) -> tuple[ArtifactKind, Any]:
    """Classify ``data`` and return the kind and the private, unchangeable value to keep."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return "bytes", bytes(data)
    if isinstance(data, str):
        return "text", data
    if isinstance(data, os.PathLike):
        path = Path(data).absolute()
        if not path.is_file():
            raise FileNotFoundError(
                f"artifact {name!r}: path {os.fspath(data)!r} is not an existing file; "
                "expected the path of a file to keep"
            )
        return "path", path
    np = _numpy()
    # .npy keeps no mask: a masked array is kept (and written) as a pickled object instead.
    plain = np is not None and isinstance(data, np.ndarray) and not is_masked(data)
    if plain and not data.dtype.hasobject:
        return "array", freeze_array(data)
    try:
        # One round trip proves the object can ship to other processes, and leaves us a copy
        # that later changes to the caller's object cannot reach.
        return "object", pickle.loads(pickle.dumps(data))
    except Exception as error:
        raise TypeError(
            f"artifact {name!r}: value {data!r} of type {type(data).__qualname__} cannot be "
            f"pickled ({error}); expected bytes, str, a path to a file, a numpy array or a "
            "picklable object"
        ) from error


def _already_added(name: str) -> ContextMutationError:
    return ContextMutationError(f"artifact {name!r} was already added to this log; use a new name")


class ArtifactLog:
    """Named artifacts produced by a run, in the order they were added.

    Each name can be used once per log (a second `add` raises
    `ContextMutationError`), and names are validated so that a writer can use them as file
    names safely.

    Examples:
        >>> log = ArtifactLog()
        >>> log.add("notes.txt", b"converged after 3 epochs", metadata={"epoch": 3})
        >>> for record in log:
        ...     print(record.name, record.kind)
        notes.txt bytes
        >>> log["notes.txt"].metadata["epoch"]
        3

    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[str, ArtifactRecord] = {}

    def add(
        self,
        name: str,
        data: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        step_name: str = "",
    ) -> None:
        """Add an artifact.

        Args:
            name: A plain file name: not empty, no path separator, no ``..``.
            data: Bytes, text, a path to an existing file (kept by reference, as an absolute
                path), a numpy array (kept as a read-only copy) or any picklable object (kept
                as a private copy).
            metadata: Optional mapping from str to freezable values describing the artifact.
            step_name: Optional name of the producing step.

        Raises:
            ContextMutationError: If an artifact with this name was already added.
            ValueError: If the name is not a safe file name.
            TypeError: If the data cannot be pickled or the metadata is not freezable.
            FileNotFoundError: If ``data`` is a path that is not an existing file.

        """
        check_artifact_name(name)
        if name in self._records:
            raise _already_added(name)
        kind, value = _prepare(name, data)
        record = ArtifactRecord(
            name=name,
            data=value,
            step_name=step_name,
            kind=kind,
            metadata=_freeze_metadata(name, metadata),
        )
        # Pickling the data can take a while, and another thread may have added the name
        # meanwhile: setdefault adds only if it is still absent, atomically.
        if self._records.setdefault(name, record) is not record:
            raise _already_added(name)

    def get(self, name: str) -> ArtifactRecord | None:
        """Return the record named ``name``, or None if there is none."""
        return self._records.get(name)

    def names(self) -> tuple[str, ...]:
        """Return the artifact names in the order they were added."""
        return tuple(self._records)

    def clear(self) -> None:
        """Remove every artifact (for example after a writer has saved them)."""
        self._records.clear()

    def extend(self, other: ArtifactLog) -> None:
        """Add every record of ``other`` after those here; a name already present is an error.

        Raises:
            ContextMutationError: Naming the clashing artifacts; nothing is added then.

        """
        clashes = [name for name in other._records if name in self._records]
        if clashes:
            raise ContextMutationError(f"artifacts {clashes!r} are already in this log")
        self._records.update(other._records)

    def __getitem__(self, name: str) -> ArtifactRecord:
        try:
            return self._records[name]
        except KeyError:
            raise KeyError(
                f"no artifact named {name!r}; known artifacts: {list(self._records)!r}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[ArtifactRecord]:
        """Iterate over the records in the order they were added."""
        return iter(tuple(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArtifactLog):
            return NotImplemented
        return _comparable(self) == _comparable(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ArtifactLog({[(r.name, r.kind) for r in self._records.values()]!r})"

    def __getstate__(self) -> dict[str, ArtifactRecord]:
        return self._records.copy()  # a copy: another thread may add records while pickling

    def __setstate__(self, state: dict[str, ArtifactRecord]) -> None:
        np = _numpy()
        for name, record in state.items():
            if np is not None and isinstance(record.data, np.ndarray):
                # Unpickled arrays come back writable; lock this private copy again.
                locked = freeze_array(record.data, copy=False)
                object.__setattr__(record, "data", locked)
            state[name] = record
        self._records = state


def _freeze_metadata(name: str, metadata: Mapping[str, Any] | None) -> FrozenDict[str, Any]:
    if metadata is None:
        return FrozenDict()
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(
            f"artifact {name!r}: metadata {metadata!r} is not accepted; "
            "expected a mapping with str keys, or None"
        )
    try:
        frozen: FrozenDict[str, Any] = freeze_value(metadata)
    except Unfreezable as error:
        raise TypeError(f"artifact {name!r}: metadata: {error}") from None
    return frozen


def _row(record: ArtifactRecord) -> tuple[Any, ...]:
    """Return a record as a tuple, an array turned into bytes, so that it compares by value."""
    data = record.data
    if hasattr(data, "tobytes") and hasattr(data, "dtype"):
        data = (data.dtype.str, data.shape, data.tobytes())
    return (record.name, record.kind, record.step_name, record.metadata, data)


def _comparable(log: ArtifactLog) -> list[tuple[Any, ...]]:
    """Return the records as tuples, so that logs compare by value."""
    return [_row(record) for record in log]
