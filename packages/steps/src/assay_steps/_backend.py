"""Backends: where a step's missing items are computed, and how its cache is configured."""

from __future__ import annotations

import collections
import dataclasses
import traceback
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pydantic
from assay_ops import is_infrastructure_error

from ._claims import Claim, running
from ._dump import dump_tagged
from ._errors import BatchProtocolError
from ._jobrefs import read_job_ref, write_job_refs
from ._notes import noted
from ._paths import StepPaths, check_name
from ._store import CachedError, EntryStore

if TYPE_CHECKING:
    from ._step import Step

ModeType = Literal["cached", "force", "read-only", "retry"]

#: A task claims its items in chunks of this many, as the step asks for them: concurrent
#: processes given the same items share them out chunk by chunk.
CLAIM_CHUNK = 256

#: Entry-point group through which packages offer backends (``Name = "module:Class"``, the
#: name being the class's own): a name not registered yet is loaded from it on first use.
ENTRY_POINT_GROUP = "assay.backends"


class Backend(pydantic.BaseModel):
    """Base of all executors: where missing items are computed, and the cache settings.

    The steps layer finds which items of a step are missing from the cache, wraps them in
    [`ItemTask`][assay_steps.ItemTask] objects and hands the list to ``_execute``. Each task, when
    called, computes its items and writes each cache entry atomically itself, wherever it
    runs, so a killed worker leaves nothing half-written; the caller then reads the
    results back from the cache. The base class runs the tasks inline, one after the other.

    Extension point for executors (e.g. in assay-backends):

    - override ``_execute(self, tasks)``: run every task (``task()``), possibly in other
      processes or on a cluster (tasks are picklable with cloudpickle; ``task.split(n)``
      cuts one into ``n`` smaller ones), and return once all are finished. Exceptions that
      items raise are cached by the task itself and re-raised when results are read;
      exceptions escaping a task (e.g. [`BatchProtocolError`][assay_steps.BatchProtocolError])
      should propagate.
    - call ``task.attach_job({...})`` with a small JSON-able job reference (job id, ...)
      so that ``LookupHandle.job()`` can later find the job of an item, and override the
      classmethod ``_load_job(ref, paths)`` to turn such a reference into a job object.
      ``task.job_ref(uid)`` reads a reference back (e.g. to wait for a job that another
      process submitted instead of submitting its items twice), and
      ``task.running_uids()`` names the items a live process is computing right now.
    - once ``_execute`` returns, the steps layer reads the results from the cache, after
      dropping what the caller's memory holds of items written in other processes.
    - subclasses register under their class name, so ``{"backend": "MyPool", ...}`` dicts
      validate to them. A package declares its backends in the ``assay.backends``
      entry-point group (``MyPool = "mypackage:MyPool"``, named after the class), so that a
      dict naming one loads it before its module was imported.

    Args:
        folder: Root cache folder; each step configuration gets a sub-folder. ``None``
            means no caching (unless a parent Chain provides a folder).
        mode: ``"cached"`` reuses successes and errors; ``"force"`` recomputes and
            overwrites (once per step instance); ``"read-only"`` never computes or writes
            and raises on a miss; ``"retry"`` recomputes cached errors. exca's former name
            of ``"force"``, ``"force-forward"``, is accepted with a ``DeprecationWarning``.
        keep_in_ram: Serve repeated hits from memory (read-only arrays, other results
            unpickled afresh on each hit, so callers never share a mutable object).
        fsync: ``"batch"`` flushes the written entries to stable storage once per task;
            ``"item"`` fsyncs every entry file and its folder (much slower); ``"off"``
            leaves flushing to the system: after a power loss recent entries may be
            missing or fail their checksum (and are recomputed), never wrong.
        trust: ``False`` (with ``mode="read-only"`` only) reads a folder you do not trust:
            array entries (plain ``.npy`` data) are read, pickle entries (other results,
            cached errors) are refused instead of unpickled, since unpickling runs code.
        on_code_change: What happens when the code of the step (its ``_run`` and every
            function of your own code it reaches, see ``Step.code_report()``) changed since
            the cached entries were computed: ``"error"`` (default) raises
            [`CodeChangedError`][assay_steps.CodeChangedError] naming each changed function
            with its file and line; ``"rerun"`` computes the items again, keeping the old
            entries on disk until pruned; ``"keep"`` serves the old entries, a choice
            remembered for this code.

    Examples:
        >>> Backend.model_validate({"backend": "Cached", "folder": "cache"}).mode
        'cached'

    """

    model_config = pydantic.ConfigDict(extra="forbid")

    folder: Path | None = None
    mode: ModeType = "cached"
    keep_in_ram: bool = False
    fsync: Literal["batch", "item", "off"] = "batch"
    trust: bool = True
    on_code_change: Literal["error", "rerun", "keep"] = "error"

    _registry: ClassVar[dict[str, type[Backend]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        Backend._registry[cls.__name__] = cls

    @classmethod
    def resolve_class(cls, name: str) -> type[Backend]:
        """Return the backend class registered as ``name``, loading its entry point if needed.

        A name not registered yet (its module not imported) is looked up in the
        ``assay.backends`` entry-point group, where packages such as assay-backends declare
        their executors; loading the entry point imports the module, which registers it.

        Raises:
            ImportError: ``name`` is in the entry-point group, but importing it failed.
            ValueError: No backend of that name is registered or in the entry-point group.

        Examples:
            >>> Backend.resolve_class("Cached").__name__
            'Cached'

        """
        found = Backend._registry.get(name)
        if found is None:
            found = _load_entry_point(name)
        if found is None:
            # Private bases (e.g. an executor family's common base) are not meant to be named.
            known = {n for n in Backend._registry if not n.startswith("_")}
            known |= set(_entry_points())
            raise ValueError(
                f"backend={name!r} is not a known backend; expected one of {sorted(known)}. "
                f"Backends of other packages are found through the {ENTRY_POINT_GROUP!r} "
                "entry-point group: the thread and process pools, local jobs and Slurm come "
                "with assay-backends (pip install assay-backends)"
            )
        if not issubclass(found, cls):
            raise ValueError(f"backend={name!r} is not a subclass of {cls.__name__}")
        return found

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_backend_key(
        cls, value: Any, handler: pydantic.ValidatorFunctionWrapHandler
    ) -> Any:
        if isinstance(value, dict) and "backend" in value:
            data = dict(value)
            name = data.pop("backend")
            target = cls.resolve_class(name)
            if target is not cls:
                return target.model_validate(data)
            return handler(data)
        if isinstance(value, Backend):  # copy, so that two steps never share a backend
            return value.model_copy()
        return handler(value)

    @pydantic.field_validator("mode", mode="before")
    @classmethod
    def _accept_force_forward(cls, mode: Any) -> Any:
        # exca's former name of "force": configs written with it still load.
        if mode == "force-forward":
            warnings.warn(
                "mode='force-forward' is deprecated: use mode='force', which carries over to "
                "the steps after the forced one",
                DeprecationWarning,
                stacklevel=2,
            )
            return "force"
        return mode

    @pydantic.model_validator(mode="after")
    def _untrusted_only_reads(self) -> Backend:
        if not self.trust and self.mode != "read-only":
            raise ValueError(
                f"trust=False with mode={self.mode!r}: an untrusted folder can only be read; "
                "expected mode='read-only'"
            )
        return self

    @pydantic.model_serializer(mode="wrap")
    def _dump_with_backend_key(
        self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo
    ) -> Any:
        # The dump options of pydantic apply; the "backend" key stays, to validate it back.
        return dump_tagged(self, handler, info, "backend", type(self).__name__)

    def derive(self, backend: str | None = None, **changes: Any) -> Backend:
        """Return a new backend with this one's settings, of another class or with changes.

        The fields this backend shares with the target class are copied; ``changes`` are
        then applied (and validated: a field the target lacks is an error).

        Args:
            backend: Name of the target class (``"Slurm"``, ``"Cached"``, ...); defaults to
                this backend's own class.
            changes: Field values for the new backend.

        Raises:
            ValueError: ``backend`` names no known backend, or a change is invalid.

        Examples:
            >>> base = Cached(folder="cache", keep_in_ram=True)
            >>> forced = base.derive(mode="force")
            >>> type(forced).__name__, forced.mode, forced.keep_in_ram
            ('Cached', 'force', True)

        """
        target = type(self) if backend is None else Backend.resolve_class(backend)
        own = type(self).model_fields
        shared = {name: getattr(self, name) for name in target.model_fields if name in own}
        return target(**{**shared, **changes})

    def _execute(self, tasks: list[ItemTask]) -> None:
        """Run every task; the base class runs them inline, in order."""
        for task in tasks:
            task()

    @classmethod
    def _load_job(cls, ref: dict[str, Any], paths: StepPaths) -> Any | None:
        """Return the job object described by a reference written with ``attach_job``."""
        return None


# The base class itself is what an infra dict without "backend" validates to (as in exca):
# registered under its name, so that its dump validates back.
Backend._registry["Backend"] = Backend


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """Return the entry points of the backends group by name (the first of a name wins)."""
    found: dict[str, metadata.EntryPoint] = {}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def _load_entry_point(name: str) -> type[Backend] | None:
    """Import the backend that the entry point ``name`` names; None when there is none.

    Raises:
        ImportError: Importing the entry point's module failed.
        ValueError: The entry point names something other than a backend class of that name.

    """
    point = _entry_points().get(name)
    if point is None:
        return None
    offered_by = point.dist.name if point.dist is not None else "the package that declares it"
    declared = f"entry point {name} = {point.value!r} of group {ENTRY_POINT_GROUP!r}"
    try:
        loaded = point.load()
    except ImportError as error:
        raise ImportError(
            f"backend={name!r} is offered by {offered_by} ({declared}), but importing it "
            f"failed: {type(error).__name__}: {error}. Is {offered_by} installed whole, with "
            f"its dependencies? pip install {offered_by}"
        ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Backend)):
        raise ValueError(f"backend={name!r}: {declared} is {loaded!r}, not a Backend subclass")
    if loaded.__name__ != name:
        # A backend dumps its class name under "backend": another name would not load back.
        raise ValueError(
            f"backend={name!r}: {declared} is the class {loaded.__name__!r}; expected the "
            "entry point to be named after its class"
        )
    return loaded


class Cached(Backend):
    """Inline execution with caching: items are computed in the calling process.

    Examples:
        >>> Cached(folder="cache").mode
        'cached'

    """

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_exca_capture_logs(cls, value: Any) -> Any:
        # exca writes capture_logs=False into every dump of a Cached infra: such configs load.
        # capture_logs=True (each run's output copied to files) has no counterpart here.
        if isinstance(value, dict) and "capture_logs" in value:
            value = dict(value)
            flag = value.pop("capture_logs")
            if flag is not False:
                raise ValueError(
                    f"capture_logs={flag!r}: capturing the output of runs to log files is not "
                    "supported; expected capture_logs=False or no capture_logs key"
                )
        return value


def _format_error(error: BaseException) -> CachedError:
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
            store.write_error(todo[written], _format_error(error))
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
