"""Backends: where a step's missing items are computed, and how its cache is configured.

The task a backend runs, [`ItemTask`][assay_steps.ItemTask], is in ``_task.py``.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pydantic

from ._dump import dump_tagged
from ._paths import StepPaths

if TYPE_CHECKING:
    from ._task import ItemTask

ModeType = Literal["cached", "force", "read-only", "retry"]

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
