"""Step: a pydantic-configured computation whose every item is cached.

This module holds the Step model: its configuration, its cache uid, what subclasses
override, and the public way to run it. The class registry is in ``_registry.py``, the cached
execution in ``_engine.py`` (a run without a cache in ``_inline.py``), where a step's entries
live in ``_storage.py``, and Chain in ``_chain.py``. ``NOVALUE`` and ``_Runtime`` (in
``_state.py``) were defined here: pickles of earlier versions still find them here.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic
from assay_ops import CodeFingerprint

from ._backend import Backend
from ._code import CodeIdentity, code_identity
from ._config import cloned_data, fill_infra_from_default, item_uid, resolved, step_uid, uid_fields
from ._dump import dump_tagged
from ._engine import SubModes, UidSource, cached_items, run_cached
from ._inline import streamed
from ._items import StepItems
from ._lookup import LookupHandle
from ._modes import effective_mode
from ._registry import REGISTRY, add_summary_note, set_up_class, type_name, validate_tagged
from ._state import NOVALUE, _Runtime
from ._stepcode import class_or_instance, code_report, own_fingerprint
from ._storage import store_of
from ._store import EntryStore
from ._stream import Pair, StreamContext, UidAt, _batch_pairs, values_of
from ._tree import nested_steps, show_lines

if TYPE_CHECKING:
    from typing_extensions import Self


class Step(pydantic.BaseModel):
    """Base class of pipeline steps: a pydantic config whose results are cached per item.

    Subclasses override ``_run(self)`` (a generator step, without input) or ``_run(self, value)``;
    or ``_run_batch(self, values)`` to process many items at once (it must yield exactly one result
    per input, in order, else [`BatchProtocolError`][assay_steps.BatchProtocolError]); or
    ``_resolve_step()`` to return an equivalent step (e.g. a [`Chain`][assay_steps.Chain]).

    As a pydantic field of type ``Step``, a list or tuple becomes a [`Chain`][assay_steps.Chain] and
    a dict is dispatched on its ``"type"`` key to the Step subclass of that name (or of that
    ``module.qualname``), so that configs round-trip through JSON and YAML with the same cache uids.
    A dump names the class by its short name, or by its ``module.qualname`` while another live class
    shares the short name. A hierarchy of steps may name its classes under another key: ``class
    Block(Step, discriminator_key="name")``.

    Args:
        infra: The backend that caches (and computes) this step's items; None runs inline
            without caching.

    Examples:
        >>> class Mult(Step):
        ...     coeff: float = 2.0
        ...
        ...     def _run(self, value: float) -> float:
        ...         return value * self.coeff
        >>> Mult(coeff=3).run(2.0)
        6.0

    """

    model_config = pydantic.ConfigDict(extra="forbid", ignored_types=(class_or_instance,))

    infra: Backend | None = None

    _runtime: _Runtime = pydantic.PrivateAttr(default_factory=_Runtime)
    # Short class name -> {"module.qualname": class}: a config names a step by its short name,
    # and two distinct classes sharing one must not be confused silently. Classes are held
    # weakly: one that nothing uses any more (a script's or an example's) stops counting.
    _registry: ClassVar[dict[str, weakref.WeakValueDictionary[str, type[Step]]]] = REGISTRY
    _flags: ClassVar[frozenset[str]] = frozenset()
    _composite: ClassVar[bool] = False  # computes through sub-steps (needs all inputs at once)
    #: Set to True in the class body that defines a ``_run_batch`` yielding exactly one result
    #: per input by construction (a loop over its inputs): its results are then cached as they
    #: come. Any other ``_run_batch`` has its results cached once it ended with the right count.
    _one_result_per_input: ClassVar[bool] = False
    #: A version pinned by hand instead of the code fingerprint (as exca users keep a version
    #: field): entries are served while it stays the same, whatever the code does.
    code_version: ClassVar[str | None] = None
    #: The format of the cache entries, as exca's ``CACHE_TYPE`` (``None``: chosen per value).
    #: assay always chooses per value (arrays as ``.npy`` files, memory-mapped when large;
    #: anything else pickled), so a name set here is accepted and changes nothing.
    CACHE_TYPE: ClassVar[str | None] = None
    # The key a dict names its Step subclass by, for fields typed with this class (set with
    # ``class Base(Step, discriminator_key="name")``); inherited by subclasses.
    _discriminator_key: ClassVar[str] = "type"
    # The Chain class a list becomes in a field typed with this class (see Chain).
    _chain_class: ClassVar[type[Step] | None] = None

    # ------------------------------------------------------------------ class set-up

    def __init_subclass__(cls, discriminator_key: str | None = None, **kwargs: Any) -> None:
        """Set the key that dicts name the subclasses of ``cls`` by (``"type"`` by default).

        Examples:
            >>> class Node(Step, discriminator_key="name"):
            ...     pass
            >>> class Doubled(Node):
            ...     def _run(self, value: int) -> int:
            ...         return 2 * value
            >>> Node.model_validate({"name": "Doubled"}).run(4)
            8

        """
        super().__init_subclass__(**kwargs)
        if discriminator_key is not None:
            if not isinstance(discriminator_key, str) or not discriminator_key.isidentifier():
                raise TypeError(
                    f"{cls.__name__}: discriminator_key={discriminator_key!r}; expected a "
                    "Python identifier such as 'type' or 'name'"
                )
            cls._discriminator_key = discriminator_key

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        set_up_class(cls, Step)

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        """Names of fields that do not change results, hence left out of the cache uid."""
        return []

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_type(cls, value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        return validate_tagged(cls, value, handler)

    if not TYPE_CHECKING:  # the signature type checkers see stays pydantic's, per field

        def __init__(self, /, **data: Any) -> None:
            try:
                super().__init__(**data)
            except pydantic.ValidationError as error:
                add_summary_note(error, data, type(self)._discriminator_key)
                raise

        # Validation of nested configs still takes pydantic's own path, not this __init__.
        __init__.__pydantic_base_init__ = True

    @pydantic.model_serializer(mode="wrap")
    def _dump_with_type(
        self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo
    ) -> Any:
        # The dump options of pydantic apply; the "type" key stays, to validate the dump back.
        key = type(self)._discriminator_key
        return dump_tagged(self, handler, info, key, type_name(type(self)))

    def model_post_init(self, context: Any, /) -> None:
        """Check that the step can run, and give sub-steps this step's cache folder."""
        if not {"has_run", "has_resolve"} & self._flags:
            raise TypeError(
                f"{type(self).__name__} must override _run, _run_batch or _resolve_step"
            )
        fill_infra_from_default(self)
        if self.infra is not None and self.infra.folder is not None:
            for sub in self._sub_steps():
                sub._inherit_folder(self.infra.folder)

    def _inherit_folder(self, folder: Path) -> None:
        if self.infra is not None:
            if self.infra.folder is not None:
                return
            self.infra.folder = Path(folder)
        for sub in self._sub_steps():
            sub._inherit_folder(folder)

    def _sub_steps(self) -> list[Step]:
        """Return the steps this step holds (in its fields, however deep; see ``_tree``)."""
        return [sub for _, sub in nested_steps(self)]

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        own = self._own_fingerprint()
        private["_runtime"] = _Runtime(carried_code=None if own is None else own.to_dict())
        return {**state, "__pydantic_private__": private}

    # ------------------------------------------------------------------ overridable

    def _run(self, *args: Any) -> Any:
        """Compute one item (override in subclasses)."""
        raise NotImplementedError

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        """Compute many items; must yield exactly one result per input, in order."""
        for value in values:
            yield self._run() if value is NOVALUE else self._run(value)

    def _resolve_step(self) -> Step:
        """Return an equivalent step to run instead (default: this step)."""
        return self

    def item_uid(self, value: Any) -> str | None:
        """Return a custom cache uid for ``value``, or None for the default keying."""
        return None

    def _code_roots(self) -> tuple[object, ...]:
        """Return the code this step's results depend on (its class; what it calls is followed)."""
        return (type(self),)

    def _own_fingerprint(self) -> CodeFingerprint | None:
        """Return the fingerprint of this step's own code (None when its class pins a version)."""
        return own_fingerprint(self)

    @class_or_instance
    def code_report(self_or_cls: Step | type[Step]) -> str:
        """Return what the code fingerprint of this step covers, to print.

        It lists every function, method and class of your own code that the step's ``_run``,
        ``_run_batch`` and ``_resolve_step`` reach (with file and line), and the references
        that cannot be followed statically, which a change would not be noticed through.
        Called on the class, or on an instance (a [`Func`][assay_steps.Func] covers its function).

        Examples:
            >>> class Half(Step):
            ...     def _run(self, value: float) -> float:
            ...         return value / 2
            >>> "Half" in Half.code_report()
            True

        """
        return code_report(self_or_cls)

    def _code_identity(self, prefix: tuple[Step, ...]) -> CodeIdentity:
        steps = (*prefix, *self._uid_steps())
        return code_identity(tuple((type(s).code_version, s._own_fingerprint()) for s in steps))

    # ------------------------------------------------------------------ configuration

    def clone(self, *dicts: dict[str, Any], **kwargs: Any) -> Self:
        """Return a new config with updates; dotted keys (``"a.b"``) reach nested fields.

        Examples:
            >>> class Add(Step):
            ...     x: int = 0
            ...
            ...     def _run(self, value: int) -> int:
            ...         return value + self.x
            >>> Add(x=1).clone(x=2).x
            2

        """
        return type(self).model_validate(cloned_data(self, dicts, kwargs))

    def show(self) -> str:
        """Return a readable tree of this step: each step with its fields, backend and mode.

        Fields at their default are left out; a step held by another (a chain's steps, a
        step in a field) is a branch; a step that resolves to another (``_resolve_step``) is
        shown as what it runs as. The format is for reading, not parsing: it may change.

        Examples:
            >>> from assay_steps import Chain
            >>> class Scale(Step):
            ...     factor: float = 1.0
            ...
            ...     def _run(self, value: float) -> float:
            ...         return value * self.factor
            >>> chain = Chain(
            ...     steps=[Scale(factor=2), Scale(infra={"backend": "Cached", "mode": "force"})],
            ...     infra={"backend": "Cached", "folder": "cache"},
            ... )
            >>> print(chain.show())
            Chain  [Cached, cache]
            └── steps
                ├── Scale  factor=2.0
                └── Scale  [Cached, cache, mode=force]

        """
        return "\n".join(show_lines(self))

    def _resolved(self) -> Step:
        """Return the step this one runs as: the fixed point of ``_resolve_step()``."""
        return resolved(self)

    def _uid_fields(self) -> dict[str, Any]:
        return uid_fields(self)

    def _uid_steps(self) -> list[Step]:
        return [self]

    def _is_generator(self) -> bool:
        return "generator" in self._flags

    def _forces(self) -> bool:
        """Whether this step recomputes its results (forced itself, or through a sub-step)."""
        return effective_mode(self) == "force"

    def _retries(self) -> bool:
        """Whether this step recomputes its cached errors (itself, or through a sub-step)."""
        return effective_mode(self) == "retry"

    def _caches_results(self) -> bool:
        """Whether this step's results are cached (a composite step's: or by a sub-step)."""
        return self.infra is not None

    def _is_pure_generator(self) -> bool:
        """Whether ``_run`` takes no input at all (not even an optional one)."""
        return "pure_generator" in self._flags

    def _item_uid(self, value: Any) -> str:
        return item_uid(self, value)

    def _step_uid(self, prefix: tuple[Step, ...]) -> str:
        return step_uid(self, prefix)

    def _store(self, prefix: tuple[Step, ...]) -> EntryStore:
        return store_of(self, prefix)

    def _forget(self, uid: str) -> None:
        for attempted in self._runtime.attempted.values():
            attempted.discard(uid)

    # ------------------------------------------------------------------ running

    def _compute_items(
        self,
        prefix: tuple[Step, ...],
        uid_at: UidAt,
        values: Iterable[Any],
        forced: bool = False,
        retried: bool = False,
        window: int | None = None,
        cached: bool = True,
    ) -> Iterator[Any]:
        """Compute items without this step's own cache (sub-steps use theirs), as they are read.

        ``uid_at(i)``: the uid of the ``i``-th input (sub-steps key their caches by it).
        ``forced`` and ``retried`` carry a mode ``"force"`` or ``"retry"`` of an enclosing
        step down to the sub-steps, whose own cache would otherwise answer. ``window``: how
        many items a cached sub-step takes at a time (None: all of them). ``cached``: the
        caller caches the results (a batch that may break its protocol is then held).
        """
        return values_of(_batch_pairs(self, enumerate(values), cached))

    def _stream_pairs(self, pairs: Iterator[Pair], context: StreamContext) -> Iterator[Pair]:
        """Yield ``(index, result)`` per pair it pulls, uncached (a ``Failed`` result ends it).

        The default runs ``_run_batch``; a composite step streams the pairs through its steps.
        """
        return _batch_pairs(self, pairs, context.cached)

    def _cached_items(
        self,
        prefix: tuple[Step, ...],
        get_uids: UidSource,
        values: list[Any],
        top: bool,
        mode: str,
        subs: SubModes,
    ) -> Iterator[Any]:
        """Return the results over ``values`` from this step's cache, computing what it lacks.

        Called by the engine (``_engine.dispatch``) for a step with a backend, once the modes
        are known: ``mode`` is the mode of this step's cache, ``subs`` what its sub-steps run
        in, ``top`` whether this is the run itself (which raises a cached error at once). The
        default looks up the items and computes the missing ones in tasks. A composite step
        whose entries its sub-steps write overrides it (a Chain sharing its last step's cache).
        """
        return cached_items(self, prefix, get_uids, values, top, mode, subs)

    def run(self, value: Any = NOVALUE) -> Any:
        """Return the result for one input, from the cache or computed (and cached).

        Examples:
            >>> class Square(Step):
            ...     def _run(self, value: int) -> int:
            ...         return value * value
            >>> Square().run(3)
            9

        """
        return next(iter(self.run_many([value])))

    def run_many(self, values: Iterable[Any]) -> StepItems:
        """Run over many inputs, one cache entry per input; results come in input order.

        Missing items are computed (through the backend) before this returns; the returned
        [`StepItems`][assay_steps.StepItems] reads the results back lazily. With a cache, an item's
        error is raised by this call (as in exca): a cached error before anything is computed, a new
        one once the backend ran.

        Without a cache, items are computed as they are read, and stream through a chain:
        item 1 passes every step before item 2 starts (a ``_run_batch`` pulls its inputs
        lazily, a cached step takes a window of items at a time), so ``values`` may be a
        long or endless iterator, taken as it is read; the result can then be read once.

        Examples:
            >>> import itertools
            >>> from assay_steps import Chain
            >>> class Half(Step):
            ...     def _run(self, value: float) -> float:
            ...         return value / 2
            >>> items = Chain(steps=[Half(), Half()]).run_many(itertools.count())
            >>> next(items), next(items)
            (0.0, 0.25)

        """
        step = self._resolved()
        if step.infra is None:
            effective_mode(step)  # modes that contradict each other are refused before work
            return streamed(step, values)
        return run_cached(step, values)

    def lookup(self, value: Any = NOVALUE) -> LookupHandle:
        """Return a handle on the cache entry of ``value`` (status, result, clear, job)."""
        step = self._resolved()
        return step._lookup((), step._item_uid(value))

    def _lookup(self, prefix: tuple[Step, ...], uid: str) -> LookupHandle:
        has_cache = self.infra is not None and self.infra.folder is not None
        return LookupHandle(self, self._store(prefix) if has_cache else None, uid)


def __getattr__(name: str) -> Any:
    # Chain was defined here: pickles of earlier versions still find it here.
    if name == "Chain":
        from ._chain import Chain

        return Chain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
