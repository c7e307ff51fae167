"""Handles on one cache entry: status, result, clearing, job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ._claims import running
from ._jobrefs import read_job_ref
from ._paths import StepPaths
from ._store import CorruptEntryError, EntryStore

if TYPE_CHECKING:
    from ._step import Step

LookupStatus = Literal["success", "error", "running", None]


class LookupHandle:
    """The cache entry of one (step configuration, input) pair.

    Returned by ``Step.lookup(value)``. It never computes anything.

    Examples:
        >>> handle = LookupHandle()  # a step without a cache folder
        >>> handle.status is None, handle.cached()
        (True, False)

    """

    def __init__(
        self,
        step: Step | None = None,
        store: EntryStore | None = None,
        uid: str = "",
        sub_handles: tuple[LookupHandle, ...] = (),
    ) -> None:
        self._step = step
        self._store = store
        self.uid = uid
        self._sub_handles = sub_handles

    @property
    def paths(self) -> StepPaths:
        """Layout of the step folder: ``step_folder`` for metadata, ``entries_folder``..."""
        if self._store is None:
            raise RuntimeError("this step has no infra with a folder, so it has no cache paths")
        return self._store.paths

    @property
    def status(self) -> LookupStatus:
        """``"success"``, ``"error"``, ``"running"`` (claimed by a live process) or None."""
        if self._store is None:
            return None
        self._store.refresh()
        found = self._store.status(self.uid)
        if found is not None:
            return found
        return "running" if self.uid in running(self._store.folder) else None

    def cached(self) -> bool:
        """Return whether a success or an error is cached for this item."""
        return self.status in ("success", "error")

    def result(self) -> Any:
        """Return the cached result, or re-raise the cached error with its traceback.

        Raises:
            RuntimeError: Nothing valid is cached for this item.

        """
        if self._store is None:
            raise RuntimeError("this step has no infra with a folder, so nothing is cached")
        self._store.refresh()
        try:
            found = self._store.read(self.uid)
        except CorruptEntryError as error:
            raise RuntimeError(f"cache entry {self.uid!r} is corrupt: {error}") from None
        if found is None:
            raise RuntimeError(
                f"no cached result for item {self.uid!r} in {self._store.paths.entries_folder}"
            )
        status, value = found
        if status == "error":
            raise value.rebuild()
        return value

    def clear_cache(self, recursive: bool = True) -> None:
        """Delete this item's entry (and, if ``recursive``, those of a Chain's steps)."""
        if recursive:
            for sub in self._sub_handles:
                sub.clear_cache(recursive=True)
        if self._store is not None:
            self._store.clear(self.uid)
        if self._step is not None:
            self._step._forget(self.uid)

    def job(self) -> Any | None:
        """Return the job a backend attached to this item (live or last), else None."""
        if self._store is None:
            return None
        ref = read_job_ref(self._store.paths, self.uid)
        if ref is None:
            return None
        from ._backend import Backend

        try:
            cls = Backend.resolve_class(str(ref.get("backend")))
        except (ImportError, ValueError):
            return None
        return cls._load_job(ref, self._store.paths)
