"""ItemTask: computes some missing items of one step and writes their cache entries.

A backend (``_backend.py``) receives a list of tasks and calls each one, wherever it runs.
"""

from __future__ import annotations

import collections
import dataclasses
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assay_ops import is_infrastructure_error

from ._claims import Claim, running
from ._errors import BatchProtocolError
from ._jobrefs import read_job_ref, write_job_refs
from ._notes import noted
from ._paths import StepPaths, check_name
from ._store import CachedError, EntryStore

if TYPE_CHECKING:
    from ._step import Step

#: A task claims its items in chunks of this many, as the step asks for them: concurrent
#: processes given the same items share them out chunk by chunk.
CLAIM_CHUNK = 256


def format_error(error: BaseException) -> CachedError:
    import cloudpickle  # type: ignore[import-untyped]  # only needed when an item fails

    try:
        pickled: bytes | None = cloudpickle.dumps(error)
    except Exception:  # unpicklable exception: keep type, message and traceback only
        pickled = None
    return CachedError(
        type_name=f"{type(error).__module__}.{type(error).__qualname__}",
        message=str(error),
        traceback="".join(traceback.format_exception(type(error), error, error.__traceback__)),
        exception=pickled,
    )


@dataclasses.dataclass
class ItemTask:
    """Compute some missing items of one step and write their cache entries.

    Picklable; calling it (in any process) claims its items chunk by chunk (see
    ``_claims.py``), computes the items the step's way (``_run`` or ``_run_batch``), appends
    every result or error to its process's segment, seals the segment and releases the
    claims. Items that an older live claim names are left to that claim's process; items
    found with an entry once claimed are skipped (unless ``force``).

    Attributes:
        step: The (resolved) step to run.
        prefix: Steps before it in a chain (part of the cache identity).
        paths: Where the step's cache lives.
        uids: Item uids, one per value.
        values: Inputs of the step, one per uid.
        force: Recompute even if an entry appeared since the task was made.
        propagate_force: Force the sub-steps too (mode ``"force"``).
        keep_in_ram: Passed to the entry store.
        fsync: Passed to the entry store.
        propagate_retry: Retry the cached errors of the sub-steps too (mode ``"retry"``).

    """

    step: Step
    prefix: tuple[Step, ...]
    paths: StepPaths
    uids: list[str]
    values: list[Any]
    force: bool = False
    propagate_force: bool = False
    keep_in_ram: bool = False
    fsync: str = "batch"
    store: EntryStore | None = dataclasses.field(default=None, repr=False, compare=False)
    # Last, so that the positions of the fields above stay as they were.
    propagate_retry: bool = False
    # Set once this very object ran with the caller's store, which then saw every write.
    _ran_with_store: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # The in-memory store of the caller stays behind; the worker opens its own.
        return {**self.__dict__, "store": None, "_ran_with_store": False}

    def __len__(self) -> int:
        return len(self.uids)

    def split(self, parts: int) -> list[ItemTask]:
        """Cut this task into at most ``parts`` tasks of consecutive items."""
        size = max(1, -(-len(self.uids) // max(1, parts)))
        return [
            dataclasses.replace(
                self, uids=self.uids[i : i + size], values=self.values[i : i + size]
            )
            for i in range(0, len(self.uids), size)
        ]

    def attach_job(self, ref: dict[str, Any], backend: str | None = None) -> None:
        """Record a job reference for every item of this task (read by ``LookupHandle.job``).

        One file for the whole task, however many items it has.

        Args:
            ref: A small JSON-able description of the job (e.g. ``{"job_id": "123"}``).
            backend: Name of the backend class whose ``_load_job`` can rebuild the job;
                defaults to the step's backend.

        """
        name = backend or type(self.step.infra).__name__
        write_job_refs(self.paths, self.uids, {"backend": name, **ref})

    def job_ref(self, uid: str) -> dict[str, Any] | None:
        """Return the job reference last attached to item ``uid`` (by any process), if any.

        A backend uses it to find items whose job, submitted by another process, still runs,
        so that they are waited for instead of submitted twice.

        Args:
            uid: An item uid (normally one of ``self.uids``).

        Returns:
            The reference as written by [`attach_job`][assay_steps.ItemTask.attach_job] (with
            its ``"backend"`` key), or None when the item has no (readable) reference.

        Raises:
            ValueError: ``uid`` is not a safe file name.

        Examples:
            >>> from pathlib import Path
            >>> task = ItemTask(None, (), StepPaths(Path("cache"), "Mult-0"), ["a"], [1])
            >>> task.job_ref("a") is None
            True

        """
        return read_job_ref(self.paths, uid)

    def running_uids(self) -> set[str]:
        """Return the uids of this task's items that a live process has claimed right now.

        Those items are being computed elsewhere: a backend need not run them (calling the
        task skips them anyway, and the steps layer waits for their entries). A claim whose
        process is gone does not count.

        Examples:
            >>> from pathlib import Path
            >>> task = ItemTask(None, (), StepPaths(Path("cache"), "Mult-0"), ["a"], [1])
            >>> task.running_uids()
            set()

        """
        return running(str(self.paths.entries_folder.absolute())) & set(self.uids)

    def __call__(self) -> None:
        """Compute the items and write their entries (see the class docstring)."""
        if self.store is not None:
            self._ran_with_store = True
        store = self.store or EntryStore(self.paths, keep_in_ram=self.keep_in_ram, fsync=self.fsync)
        for uid in self.uids:  # before any work: a hostile name must not reach the disk
            check_name(uid, "item uid")
        store.make_folders()
        todo: list[str] = []  # claimed items, in the order they are fed to the step
        claims: list[Claim] = []
        fed_all = False

        def claimed() -> Iterator[Any]:
            # Claimed a chunk at a time as the step asks for items, so that concurrent
            # workers given the same items share them out.
            nonlocal fed_all
            taken: set[str] = set()
            for start in range(0, len(self.uids), CLAIM_CHUNK):
                uids = self.uids[start : start + CLAIM_CHUNK]
                claim = Claim.take(store.folder, uids)
                claims.append(claim)
                store.refresh()  # after the claim: what its former holders wrote is seen
                granted = set(claim.granted)
                for uid, value in zip(uids, self.values[start : start + CLAIM_CHUNK], strict=True):
                    if uid in taken or uid not in granted or not self._needed(store, uid):
                        continue
                    taken.add(uid)
                    todo.append(uid)
                    yield value
            fed_all = True

        written = 0
        writing = False  # an OSError while writing an entry is the disk's, not the item's
        # A batch of the step's own (not known to yield one result per input) is held back
        # until it ended with exactly one result per input: a result too many or too few
        # pairs every result with the wrong item, so none of them may be cached. Holding
        # costs the results of one task in memory; the default loop over ``_run`` (and a
        # Chain, which counts its results itself) writes each result as it comes.
        held: collections.deque[Any] | None = (
            None if "exact_batch" in self.step._flags else collections.deque()
        )

        def write(result: Any) -> None:
            nonlocal written, writing
            writing = True
            store.write_result(todo[written], result)
            writing = False
            written += 1

        def write_held() -> None:
            while held:
                write(held.popleft())

        try:
            if getattr(self.step, "_composite", False):  # a Chain needs its whole input list
                values = list(claimed())
                results = self.step._compute_items(
                    self.prefix,
                    todo.__getitem__,
                    values,
                    self.propagate_force,
                    self.propagate_retry,
                )
            else:
                results = noted(self.step, iter(self.step._run_batch(claimed())))
            try:
                for result in results:
                    if written + len(held or ()) >= len(todo):
                        raise BatchProtocolError(
                            f"{type(self.step).__name__}._run_batch yielded more results than "
                            "inputs it consumed; expected exactly one result per input"
                        )
                    if held is None:
                        write(result)
                    else:
                        held.append(result)
                if written + len(held or ()) < len(todo) or not fed_all:
                    raise BatchProtocolError(
                        f"{type(self.step).__name__}._run_batch yielded "
                        f"{written + len(held or ())} results for {len(self.uids)} inputs; "
                        "expected exactly one result per input"
                    )
            except BatchProtocolError:
                raise
            except Exception:
                # An item raised: the results before it are its predecessors' (as in exca),
                # and the error goes to the item being computed (below).
                write_held()
                raise
            write_held()
        except BatchProtocolError:
            raise
        except Exception as error:
            # Cache the error on the item being computed; the others stay missing. A failed
            # write, or the storage failing under the step itself (a full disk, an I/O
            # error), is not the item's error: caching it would stick.
            if written >= len(todo) or (writing and isinstance(error, OSError)):
                raise
            if is_infrastructure_error(error):
                raise
            store.write_error(todo[written], format_error(error))
            written += 1
        finally:
            try:
                store.sync()
            finally:
                for claim in claims:
                    claim.release()

    def _needed(self, store: EntryStore, uid: str) -> bool:
        """Return whether claimed item ``uid`` is to be computed (no valid entry, or force)."""
        if self.force:
            return True
        if not store.exists(uid):  # the usual case, checked without verifying anything
            return True
        return store.status(uid) is None  # a corrupt entry is computed again

    def _forget_written_elsewhere(self) -> None:
        """Drop what the caller's store remembers of items that other processes wrote.

        Called by the steps layer once the backend's ``_execute`` returned: an entry that a
        worker rewrote (mode ``"force"``) must not be served stale from memory. A task that
        ran here, with the caller's store, updated that store as it wrote: nothing to drop.
        """
        if self.store is not None and not self._ran_with_store:
            for uid in self.uids:
                self.store.forget(uid)
