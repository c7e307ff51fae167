"""Step and Chain: pydantic-configured computations whose every item is cached."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import json
import pickle
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import pydantic
import xxhash
from assay_ops import CodeFingerprint, fingerprint, is_infrastructure_error

from ._backend import Backend, ItemTask, _format_error
from ._claims import running
from ._code import (
    CodeIdentity,
    check_pin,
    code_identity,
    entries_version,
    old_encoding_message,
    older_encodings,
    register,
)
from ._dump import dump_tagged
from ._durable import write_atomic
from ._errors import BatchProtocolError, CodeChangedError
from ._filehash import attach as attach_file_digests
from ._items import StepItems
from ._lookup import LookupHandle
from ._modes import effective_mode, fold_modes
from ._notes import add_note
from ._paths import StepPaths, mark_cache_folder, safe_item_uid
from ._store import CorruptEntryError, EntryStore
from ._stream import WINDOW, Failed, UidAt, _batch_pairs, chain_pairs
from ._tree import holds, nested_steps, show_lines
from ._uid import ENCODING, ENCODING_VERSION, encode, uid_of

if TYPE_CHECKING:
    from typing_extensions import Self

#: Seconds between two checks of an item that another process is computing.
POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 1.0
_NOINPUT_UID = "noinput"
#: Rounds that compute nothing before a run gives up on its missing items.
_STALLED_ROUNDS = 4
#: Longest random pause before another round after one that computed nothing: longer than
#: the coarsest file system time (one second) that could order two claims as simultaneous.
_TIE_PAUSE_SECONDS = 1.5
#: Longest step class name: with "-<32 hex digits>" the folder name stays under 255 bytes.
_MAX_CLASS_NAME = 120


class _SubModes(NamedTuple):
    """What a step passes on to the sub-steps it runs: force them, retry their errors."""

    force: bool
    retry: bool


class _NoValue:
    """Sentinel for "no input" (generator steps)."""

    def __repr__(self) -> str:
        return "<no value>"

    def __reduce__(self) -> str:
        return "NOVALUE"  # unpickles to the module-level singleton


NOVALUE: Any = _NoValue()

UidSource = Callable[[], list[str]]


@dataclasses.dataclass
class _Runtime:
    """Per-instance state, dropped on pickling: entry stores and items already forced."""

    stores: dict[tuple[str, str], EntryStore] = dataclasses.field(default_factory=dict)
    codes: dict[tuple[str, str], CodeIdentity] = dataclasses.field(default_factory=dict)
    attempted: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    #: The fingerprint of the step's code in the process that pickled it (as a dict): a step
    #: sent to another process keeps the code identity it was sent with, even where its class
    #: arrives without source (a class pickled by value).
    carried_code: dict[str, Any] | None = None
    carried_print: CodeFingerprint | None = dataclasses.field(default=None, repr=False)
    #: The store of the step on its own, fixed for the length of one ``run_many`` call (its
    #: key, a hash of the configuration, is then computed once per call, not per use).
    pinned: EntryStore | None = dataclasses.field(default=None, repr=False)
    #: The step ``_resolve_step()`` last gave: kept while it gives an equal one, so that the
    #: resolution's own state (the items it forced) lasts as long as this instance.
    resolution: Step | None = dataclasses.field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        # Runtime state never makes two equal configurations differ.
        return isinstance(other, _Runtime)

    __hash__ = None  # type: ignore[assignment]


def _rt(step: Step) -> _Runtime:
    """Return a step's runtime state (read directly: pydantic's attribute fallback is slow)."""
    runtime: _Runtime = step.__pydantic_private__["_runtime"]  # type: ignore[index]
    return runtime


def _same_config(one: Step, other: Step) -> bool:
    try:
        return type(one) is type(other) and bool(one == other)
    except Exception:  # e.g. array fields: no truth value, so never "the same"
        return False


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # e.g. arrays: ambiguous truth value, so never "equal to the default"
        return False


class _class_or_instance:
    """A method that works on the class and on an instance (``Step.code_report``)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: object, owner: type) -> Callable[..., Any]:
        return functools.partial(self.func, owner if obj is None else obj)


def _memo(source: Callable[[], list[str]]) -> UidSource:
    cache: list[list[str]] = []

    def get() -> list[str]:
        if not cache:
            cache.append(source())
        return cache[0]

    return get


def _keyed_by_value(step: Step) -> bool:
    """Whether ``step`` keys an input by hashing it (no ``item_uid`` of its own)."""
    return type(step)._item_uid is Step._item_uid and type(step).item_uid is Step.item_uid


def _uid_function(step: Step) -> Callable[[Any], str]:
    """Return how ``step`` keys an input: ``item_uid``, or the hash of the value itself."""
    if _keyed_by_value(step):
        return lambda value: _NOINPUT_UID if value is NOVALUE else uid_of(value)
    return step._item_uid


def _check_inputs(step: Step, values: Iterable[Any]) -> Iterator[Any]:
    """Pass ``values`` on, refusing "no input" for a step that needs one."""
    generator = step._is_generator()
    for value in values:
        if value is NOVALUE and not generator:
            raise TypeError(f"{type(step).__name__}._run needs an input: call run(value)")
        yield value


def _values_of(pairs: Iterator[tuple[int, Any]]) -> Iterator[Any]:
    """Yield the values of ``(index, value)`` pairs; raise the error of a failed item."""
    for _, value in pairs:
        if isinstance(value, Failed):
            raise value.error
        yield value


def _streamed(step: Step, values: Iterable[Any]) -> StepItems:
    """Run ``step`` (without a cache of its own) over ``values`` as its results are read.

    A collection (a list, a tuple) can be read again: each reading computes again, as in
    exca; its cached sub-steps take all of it at once. Any other iterable is taken as it is
    read, once (it may be endless), and its cached sub-steps take a window at a time.
    """
    if isinstance(values, Collection):
        for _ in _check_inputs(step, values):  # refused now, before any result is read
            pass
        return StepItems(
            _stream_results(step, values, None),
            len(values),
            again=lambda: _stream_results(step, values, None),
        )
    return StepItems(_stream_results(step, _check_inputs(step, values), WINDOW), None)


def _stream_results(step: Step, values: Iterable[Any], window: int | None) -> Iterator[Any]:
    """Yield ``step``'s results over ``values``; keep each input only while its item runs."""
    inputs: dict[int, Any] = {}
    uids: dict[int, str] = {}
    item_uid = _uid_function(step)

    def uid_at(index: int) -> str:
        uid = uids.get(index)
        if uid is None:  # computed only when a cache asks: a run without one never hashes
            uid = uids[index] = item_uid(inputs[index])
        return uid

    def kept() -> Iterator[Any]:
        for index, value in enumerate(values):
            inputs[index] = value
            yield value

    results = step._compute_items((), uid_at, kept(), window=window, cached=False)
    for index, result in enumerate(results):
        inputs.pop(index, None)
        uids.pop(index, None)
        yield result


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

    model_config = pydantic.ConfigDict(extra="forbid", ignored_types=(_class_or_instance,))

    infra: Backend | None = None

    _runtime: _Runtime = pydantic.PrivateAttr(default_factory=_Runtime)
    # Short class name -> {"module.qualname": class}: a config names a step by its short name,
    # and two distinct classes sharing one must not be confused silently. Classes are held
    # weakly: one that nothing uses any more (a script's or an example's) stops counting.
    _registry: ClassVar[dict[str, weakref.WeakValueDictionary[str, type[Step]]]] = {}
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
        key = cls._discriminator_key
        if key in cls.model_fields:
            raise TypeError(
                f"{cls.__name__} has a field {key!r}, which is the key its configurations name "
                f"their class by; rename the field or pass another discriminator_key"
            )
        if not (cls.CACHE_TYPE is None or isinstance(cls.CACHE_TYPE, str)):
            raise TypeError(
                f"{cls.__name__}.CACHE_TYPE={cls.CACHE_TYPE!r}; expected None or a format name"
            )
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        Step._registry.setdefault(cls.__name__, weakref.WeakValueDictionary())[qualified] = cls
        flags = set()
        if (
            cls._run is not Step._run
            or cls._run_batch is not Step._run_batch
            or (cls._compute_items is not Step._compute_items)
        ):
            flags.add("has_run")
        if cls._resolve_step is not Step._resolve_step:
            flags.add("has_resolve")
        batch_owner = next(c for c in cls.__mro__ if "_run_batch" in vars(c))
        if batch_owner is Step or vars(batch_owner).get("_one_result_per_input", False):
            flags.add("exact_batch")
        params = list(inspect.signature(cls._run).parameters.values())[1:]
        if all(
            p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
        ):
            flags.add("generator")
            if all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params):
                flags.add("pure_generator")  # no input can reach it, not even an optional one
        cls._flags = frozenset(flags)
        if cls.code_version is not None:
            check_pin(cls.code_version, cls.__name__)

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        """Names of fields that do not change results, hence left out of the cache uid."""
        return []

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_type(cls, value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        key = cls._discriminator_key
        chain = cls._chain_class or Chain
        if isinstance(value, (list, tuple)):
            value = {key: _type_name(chain), "steps": list(value)}
        elif (
            isinstance(value, dict)
            and value
            and key not in value
            and not set(value) <= set(cls.model_fields)
            and all(isinstance(v, (Step, dict)) for v in value.values())
        ):
            value = {key: _type_name(chain), "steps": OrderedDict(value)}
        if not isinstance(value, dict):
            return handler(value)
        if key not in value:
            return _validate_with_hint(cls, value, handler)
        data = dict(value)
        name = data.pop(key)
        if name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            target: type[Step] | None = cls  # its own name: no other class is meant
        else:
            target = _registered_step(name, key, cls) if isinstance(name, str) else None
        if target is None:
            raise ValueError(
                f"{key}={name!r} is not a registered Step subclass; expected one of "
                f"{sorted(short for short, live in Step._registry.items() if live)}"
            )
        if not issubclass(target, cls):
            raise ValueError(f"{key}={name!r} is not a subclass of {cls.__name__}")
        if target is cls:
            return _validate_with_hint(cls, data, handler)
        return target.model_validate(data)

    if not TYPE_CHECKING:  # the signature type checkers see stays pydantic's, per field

        def __init__(self, /, **data: Any) -> None:
            try:
                super().__init__(**data)
            except pydantic.ValidationError as error:
                _add_summary_note(error, data, type(self)._discriminator_key)
                raise

        # Validation of nested configs still takes pydantic's own path, not this __init__.
        __init__.__pydantic_base_init__ = True

    @pydantic.model_serializer(mode="wrap")
    def _dump_with_type(
        self, handler: pydantic.SerializerFunctionWrapHandler, info: pydantic.SerializationInfo
    ) -> Any:
        # The dump options of pydantic apply; the "type" key stays, to validate the dump back.
        key = type(self)._discriminator_key
        return dump_tagged(self, handler, info, key, _type_name(type(self)))

    def model_post_init(self, context: Any, /) -> None:
        """Check that the step can run, and give sub-steps this step's cache folder."""
        if not {"has_run", "has_resolve"} & self._flags:
            raise TypeError(
                f"{type(self).__name__} must override _run, _run_batch or _resolve_step"
            )
        self._fill_infra_from_default()
        if self.infra is not None and self.infra.folder is not None:
            for sub in self._sub_steps():
                sub._inherit_folder(self.infra.folder)

    def _fill_infra_from_default(self) -> None:
        # As in exca: a class whose infra default sets fields (e.g. a folder) keeps them when
        # a config overrides only some fields of infra (e.g. {"backend": "Cached", "mode": ...}).
        default = type(self).model_fields["infra"].default
        infra = self.infra
        if not isinstance(default, Backend) or infra is None:
            return
        for name in default.model_fields_set & set(type(infra).model_fields):
            if name not in infra.model_fields_set:
                setattr(infra, name, getattr(default, name))

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
        if type(self).code_version is not None:
            return None
        runtime = _rt(self)
        if runtime.carried_code is not None:
            if runtime.carried_print is None:
                runtime.carried_print = CodeFingerprint.from_dict(runtime.carried_code)
            return runtime.carried_print
        return fingerprint(*self._code_roots())

    @_class_or_instance
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
        cls = type(self_or_cls) if isinstance(self_or_cls, Step) else self_or_cls
        if cls.code_version is not None:
            return f"{cls.__name__}: code version pinned by hand: {cls.code_version!r}"
        if isinstance(self_or_cls, Step):
            return self_or_cls._own_fingerprint().report()  # type: ignore[union-attr]
        return fingerprint(cls).report()

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
        if len(dicts) > 1:
            raise ValueError(
                f"clone got {len(dicts)} dicts of updates {list(dicts)}; expected one dict "
                "(merge them: which one wins a shared key would be a guess)"
            )
        twice = sorted(set(kwargs) & set(dicts[0])) if dicts else []
        if twice:
            raise ValueError(
                f"clone got {twice[0]!r} both in the dict ({dicts[0][twice[0]]!r}) and as a "
                f"keyword argument ({kwargs[twice[0]]!r}); expected each key once"
            )
        data = self.model_dump()
        for update in (*dicts, kwargs):
            for key, value in update.items():
                target: dict[str, Any] | list[Any] = data
                *parents, last = key.split(".")
                for part in parents:
                    child = _clone_slot(target, part, key)[1]
                    if not isinstance(child, (dict, list)):
                        raise KeyError(f"clone key {key!r}: {part!r} is not a nested config")
                    target = child
                slot = _clone_slot(target, last, key)[0]
                target[slot] = value
        return type(self).model_validate(data)

    def show(self) -> str:
        """Return a readable tree of this step: each step with its fields, backend and mode.

        Fields at their default are left out; a step held by another (a chain's steps, a
        step in a field) is a branch; a step that resolves to another (``_resolve_step``) is
        shown as what it runs as. The format is for reading, not parsing: it may change.

        Examples:
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
        if "has_resolve" not in self._flags:
            return self
        step: Step = self
        for _ in range(32):
            resolved = step._resolve_step()
            if resolved is step:
                break
            step = resolved
        else:
            raise RuntimeError(f"{type(self).__name__}._resolve_step does not reach a fixed point")
        if step is self:
            return self
        runtime = _rt(self)
        # Resolved again on every use, since the configuration may have changed since; an
        # equal resolution is the one already in use, with what it remembers.
        if runtime.resolution is not None and _same_config(runtime.resolution, step):
            return runtime.resolution
        if holds(step, self):
            raise RuntimeError(
                f"{type(self).__name__}._resolve_step returned a step containing the step "
                "itself, which would resolve again without end; expected a step built from "
                "copies, e.g. self.model_copy(update=...) with the field that resolves emptied"
            )
        runtime.resolution = step
        return step

    def _uid_fields(self) -> dict[str, Any]:
        fields = type(self).model_fields
        excluded = {"infra", *self._exclude_from_cls_uid()}
        unknown = excluded - set(fields)
        if unknown:  # a typo would leave the intended field in the uid without a word
            name = type(self).__name__
            raise ValueError(
                f"{name}._exclude_from_cls_uid() names {sorted(unknown)}, which are not fields "
                f"of {name}; expected some of {sorted(set(fields) - {'infra'})}"
            )
        out = {}
        for name, info in fields.items():
            if name in excluded:
                continue
            value = getattr(self, name)
            if info.default_factory is None and _same(value, info.default):
                continue  # adding a field with a default keeps existing uids
            out[name] = value
        return out

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

    def _is_pure_generator(self) -> bool:
        """Whether ``_run`` takes no input at all (not even an optional one)."""
        return "pure_generator" in self._flags

    def _item_uid(self, value: Any) -> str:
        custom = self.item_uid(value)
        if custom is not None:
            if value is NOVALUE and not self._is_pure_generator():
                name = type(self).__name__
                raise TypeError(
                    f"{name}.item_uid returned {custom!r} without an input, but {name}._run "
                    "accepts an optional input: its results with and without an input would "
                    "share uids; expected item_uid to return None without an input, or a _run "
                    "taking no input"
                )
            return safe_item_uid(custom, f"{type(self).__name__}.item_uid({value!r:.60})")
        if value is NOVALUE:
            return _NOINPUT_UID
        return uid_of(value, "input value")

    def _step_uid(self, prefix: tuple[Step, ...]) -> str:
        steps = (*prefix, *self._uid_steps())
        digest = xxhash.xxh3_128_hexdigest(ENCODING_VERSION + encode(steps, "step config"))
        name = type(steps[-1]).__name__
        # The class name becomes a folder name; type() accepts any string ("../x", "a/b").
        if not name.isidentifier() or len(name) > _MAX_CLASS_NAME:
            raise ValueError(
                f"step class name {name!r} cannot name a cache folder: expected a Python "
                f"identifier of at most {_MAX_CLASS_NAME} characters"
            )
        return f"{name}-{digest}"

    def _store(self, prefix: tuple[Step, ...]) -> EntryStore:
        runtime = _rt(self)
        if runtime.pinned is not None and not prefix:
            return runtime.pinned
        infra = self.infra
        if infra is None or infra.folder is None:
            raise RuntimeError(
                f"{type(self).__name__} has infra={infra!r} without a folder; set infra.folder"
            )
        attach_file_digests(infra.folder)  # before any uid: Path fields hash their files
        key = (str(infra.folder), self._step_uid(prefix))
        store = runtime.stores.get(key)
        if store is None or (store.keep_in_ram, store.trust) != (infra.keep_in_ram, infra.trust):
            paths = StepPaths(infra.folder, key[1], self._entries_version(infra, key, prefix))
            store = EntryStore(
                paths, keep_in_ram=infra.keep_in_ram, fsync=infra.fsync, trust=infra.trust
            )
            store.on_first_write = lambda: self._record_folder(store, key)
            runtime.stores[key] = store
        return store

    def _entries_version(
        self, infra: Backend, key: tuple[str, str], prefix: tuple[Step, ...]
    ) -> str:
        """Return the code version whose entries this step serves (see ``on_code_change``)."""
        identity = self._code_identity(prefix)
        step_folder = Path(key[0]) / key[1]
        what = f"step {type(self).__name__}"
        version, registered = entries_version(step_folder, identity, infra.on_code_change, what)
        _rt(self).codes[key] = identity  # recorded (if it is not yet) when it first writes
        if not registered and infra.on_code_change == "error" and not step_folder.exists():
            name = key[1].rsplit("-", 1)[0]
            old = older_encodings(Path(key[0]), name, ENCODING)
            if old:
                raise CodeChangedError(old_encoding_message(what, old, ENCODING))
        return version

    def _record_folder(self, store: EntryStore, key: tuple[str, str]) -> None:
        """Mark the cache folder as assay's and record the code of a new version folder."""
        mark_cache_folder(Path(key[0]), ENCODING)
        # Kept, not taken: a folder removed while the process runs is recorded again.
        identity = self._runtime.codes.get(key)
        if identity is not None and identity.version == store.paths.code:
            register(store.paths.step_folder, identity)

    def _write_config(self, store: EntryStore, prefix: tuple[Step, ...]) -> None:
        path = store.paths.step_folder / "config.json"
        if store.config_written or path.exists():
            return
        steps = []
        for step in (*prefix, *self._uid_steps()):
            try:
                dumped = step.model_dump(mode="json")
                dumped.pop("infra", None)
                steps.append(dumped)
            except Exception:  # not JSON-able: keep a readable trace of it anyway
                key = type(step)._discriminator_key
                steps.append({key: _type_name(type(step)), "repr": repr(step)})
        data = {"step_uid": store.paths.step_uid, "encoding": ENCODING, "steps": steps}
        store.paths.step_folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, [json.dumps(data, indent=2).encode()], fsync=False)
        store.config_written = True

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
        return _values_of(_batch_pairs(self, enumerate(values), cached))

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
            return _streamed(step, values)
        values = list(values)
        if not step._is_generator() and any(v is NOVALUE for v in values):
            raise TypeError(f"{type(step).__name__}._run needs an input: call run(value)")
        if _keyed_by_value(step):
            # Hashed inline, without a call per input: the hot path of warm runs.
            uids = _memo(lambda: [_NOINPUT_UID if v is NOVALUE else uid_of(v) for v in values])
        else:
            uids = _memo(lambda: [step._item_uid(v) for v in values])
        store = step._store(())
        runtime = _rt(step)
        runtime.pinned = store
        try:
            results = _dispatch(step, (), uids, values, forced=False, top=True)
            results = _raise_now(step, uids(), results)
        finally:
            runtime.pinned = None
        # Iterating again reads the entries again, as in exca (whatever the mode).
        return StepItems(results, len(values), again=lambda: _read_all(step, store, uids()))

    def lookup(self, value: Any = NOVALUE) -> LookupHandle:
        """Return a handle on the cache entry of ``value`` (status, result, clear, job)."""
        step = self._resolved()
        return step._lookup((), step._item_uid(value))

    def _lookup(self, prefix: tuple[Step, ...], uid: str) -> LookupHandle:
        has_cache = self.infra is not None and self.infra.folder is not None
        return LookupHandle(self, self._store(prefix) if has_cache else None, uid)


class Chain(Step):
    """Steps run in sequence, each with its own cache, keyed by the chain's input.

    Step ``k`` of a chain is cached under the identity of steps ``0..k`` and the uid of the
    chain's input, so changing step ``k`` recomputes only steps ``k`` onwards. A chain
    shares its identity (and its cache folder) with its last step. Items stream through the
    steps: item 1 passes every step before item 2 starts, except that a step with a cache
    takes its items together (a window of them over an iterator), for its backend.

    Args:
        steps: A list of steps, or an ordered dict name → step (``chain["name"]``).

    Examples:
        >>> class Add(Step):
        ...     x: int = 1
        ...
        ...     def _run(self, value: int) -> int:
        ...         return value + self.x
        >>> chain = Chain(steps=[Add(x=1), Add(x=10)])
        >>> chain.run(0), len(chain), type(chain[:1]).__name__
        (11, 2, 'Chain')

    """

    steps: list[Step] | OrderedDict[str, Step]

    _composite: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # As in exca: a chain class of a hierarchy of its own (class MyChain(Chain, MyBase))
        # is what a list becomes in a field typed MyBase. A plain subclass of Chain does not
        # change what lists become everywhere else.
        base = next(b for b in cls.__mro__[1:] if issubclass(b, Step) and not issubclass(b, Chain))
        if base is not Step:
            base._chain_class = cls

    def model_post_init(self, context: Any, /) -> None:
        """Reject an empty chain, then propagate the cache folder."""
        if not self.steps:
            raise ValueError("Chain steps=[] is empty; expected at least one step")
        super().model_post_init(context)

    def _sequence(self) -> list[Step]:
        return list(self.steps.values() if isinstance(self.steps, dict) else self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int | str | slice) -> Step:
        if isinstance(index, slice):
            if isinstance(self.steps, dict):
                keys = list(self.steps)[index]
                named = OrderedDict((k, self.steps[k]) for k in keys)
                return type(self)(steps=named, infra=self.infra)
            return type(self)(steps=self._sequence()[index], infra=self.infra)
        if isinstance(index, str):
            if not isinstance(self.steps, dict):
                raise TypeError(f"chain[{index!r}]: string indices need steps given as a dict")
            return self.steps[index]
        return self._sequence()[index]

    def _resolved_steps(self) -> list[Step]:
        return [step._resolved() for step in self._sequence()]

    def _uid_steps(self) -> list[Step]:
        return [s for step in self._resolved_steps() for s in step._uid_steps()]

    def _is_generator(self) -> bool:
        return self._resolved_steps()[0]._is_generator()

    def item_uid(self, value: Any) -> str | None:
        """Delegate to the first step's ``item_uid``."""
        return self._resolved_steps()[0].item_uid(value)

    def _item_uid(self, value: Any) -> str:
        return self._resolved_steps()[0]._item_uid(value)

    def _shares_last_cache(self) -> bool:
        last: Step = self
        while isinstance(last, Chain):
            last = last._resolved_steps()[-1]
        return (
            self.infra is not None
            and last.infra is not None
            and last.infra.folder == self.infra.folder
        )

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
        """Stream the items through the steps (see ``_stream``), then raise the first error.

        The items before the failing one go through every step and are yielded before the
        error is raised: the task that writes the chain's entries then caches each success
        under its item and the error under the item that failed.
        """
        pairs = enumerate(values)
        return _values_of(chain_pairs(self, prefix, pairs, uid_at, forced, retried, window, cached))

    def _lookup(self, prefix: tuple[Step, ...], uid: str) -> LookupHandle:
        subs = []
        sub_prefix = prefix
        for step in self._resolved_steps():
            subs.append(step._lookup(sub_prefix, uid))
            sub_prefix = (*sub_prefix, *step._uid_steps())
        own = super()._lookup(prefix, uid)
        store = own._store if own._store is not None else subs[-1]._store
        return LookupHandle(self, store, uid, tuple(subs))


def _clone_slot(container: dict[str, Any] | list[Any], part: str, key: str) -> tuple[Any, Any]:
    """Return where ``part`` of the dotted clone key ``key`` points in ``container``, and what.

    A list (e.g. the steps of a chain) is indexed by number, as in exca (``"steps.0.coeff"``).
    """
    if isinstance(container, list):
        if not (part.isdigit() and int(part) < len(container)):
            raise KeyError(
                f"clone key {key!r}: {part!r} is not an index of a list of {len(container)} "
                f"item(s); expected a number below {len(container)}"
            )
        return int(part), container[int(part)]
    return part, container.get(part)


def _dispatch(
    step: Step,
    prefix: tuple[Step, ...],
    get_uids: UidSource,
    values: list[Any],
    forced: bool,
    retried: bool = False,
    top: bool = False,
) -> Iterator[Any]:
    """Return the results of ``step`` over ``values``, computing and caching what is missing.

    ``forced`` / ``retried``: an enclosing chain (or a step before this one) is in mode
    ``"force"`` / ``"retry"``, which then applies to this step too. ``top``: the run itself,
    which raises a cached error before computing anything, as exca does (inside a chain,
    the reader raises it in turn, so that the chain's task caches it under the right item).
    """
    infra = step.infra
    if infra is None:
        return step._compute_items(prefix, lambda i: get_uids()[i], values, forced, retried)
    context = "force" if forced else "retry" if retried else "cached"
    # The mode of this step's own cache: its own, raised by a forced (or retried) sub-step,
    # whose results its own depend on, and by what comes before it.
    mode = fold_modes([context, effective_mode(step)], type(step).__name__)
    # What its sub-steps are run in: its own mode and the enclosing one, as in exca (a chain
    # retried as a whole retries the errors of its steps). A mode that comes from a sub-step
    # applies from that sub-step on, not to the steps before it.
    subs = _SubModes(forced or infra.mode == "force", retried or infra.mode == "retry")
    if mode != "read-only" and isinstance(step, Chain) and step._shares_last_cache():
        # The chain's entry is its last step's entry: computing the steps writes it.
        return _run_chain_missing(step, prefix, get_uids, values, top, mode, subs)
    store = step._store(prefix)
    store.refresh()  # what other processes wrote since this process last looked
    uids = get_uids()
    attempted = _rt(step).attempted.setdefault(store.paths.step_uid, set())
    pending: dict[str, Any] = {}
    # Looked up together: entries read side by side are verified from shared reads.
    statuses = store.statuses(uids) if mode in ("cached", "retry") else None
    for index, (uid, value) in enumerate(zip(uids, values, strict=True)):
        if uid in pending:
            continue
        if mode == "force" and uid not in attempted:
            pending[uid] = value
            continue
        status = statuses[index] if statuses is not None else _status(step, store, uid, mode)
        if status is None or (status == "error" and mode == "retry" and uid not in attempted):
            pending[uid] = value
        elif top and status == "error":
            _read(step, store, uid)
    if pending:
        step._write_config(store, prefix)
        _compute(step, prefix, store, pending, mode, subs)
        if mode in ("force", "retry"):
            attempted.update(pending)
    return _read_all(step, store, uids)


def _serves_cache(step: Step) -> bool:
    """Whether ``step`` keeps results that a later run may read (a cache not in mode force)."""
    infra = step.infra
    return infra is not None and infra.folder is not None and infra.mode != "force"


def _run_chain_missing(
    chain: Chain,
    prefix: tuple[Step, ...],
    get_uids: UidSource,
    values: list[Any],
    top: bool,
    mode: str,
    subs: _SubModes,
) -> Iterator[Any]:
    """Run ``chain`` over the items its shared entry lacks (or, in retry, has as an error).

    As in exca, an item with a chain entry runs none of the steps, even when an earlier step
    has a cache of its own without the item: a success is read, a cached error re-raised
    (in mode ``"retry"``, computed again). Missing and corrupt entries go through the steps;
    in mode ``"force"``, every item does. Force and retry apply once per chain instance. Each
    item goes through the steps once, however many times it is given. ``subs``: the modes
    the steps are run in (see ``_dispatch``).
    """
    store = chain._store(prefix)
    uids = get_uids()
    attempted = _rt(chain).attempted.setdefault(store.paths.step_uid, set())
    todo: dict[str, Any] = {}
    for uid, value in zip(uids, values, strict=True):
        if uid in todo:
            continue
        again = mode in ("force", "retry") and uid not in attempted
        if again and mode == "force":
            todo[uid] = value
            continue
        try:
            found = store.peek(uid)  # from memory when this instance verified it before
        except CorruptEntryError:
            found = None  # recomputed and overwritten
        if found is None or (again and found == "error"):
            todo[uid] = value
        elif top and found == "error":
            _read(chain, store, uid)
    failure: Exception | None = None
    if todo:
        missing = list(todo)
        try:
            # Consumed here: the steps write the chain's entries as they go.
            computed = chain._compute_items(
                prefix, missing.__getitem__, list(todo.values()), subs.force, subs.retry
            )
            for _ in computed:
                pass
        except Exception as error:
            failure = error
        if mode in ("force", "retry"):
            attempted.update(missing)
        for uid in missing:
            store.forget(uid)  # the steps' own stores wrote them: what this one holds is old
        # A broken batch caches nothing; nor does the storage failing (a full disk is not
        # the item's error, and a cached one would stick).
        if failure is not None and not (
            isinstance(failure, BatchProtocolError) or is_infrastructure_error(failure)
        ):
            _cache_chain_error(store, missing, failure)
    reader = _read_all(chain, store, uids)
    return reader if failure is None else _reads_until(reader, failure)


def _cache_chain_error(store: EntryStore, uids: list[str], error: Exception) -> None:
    """Cache ``error`` under the failing item of a chain whose entry is its last step's.

    Items go through the steps in order, and the last step wrote an entry for each item
    before the failing one. When a step before the last one failed, no step cached the
    error: it goes under the first item without an entry, as exca caches a chain's error.
    An error entry already there means the last step failed and cached it itself.
    """
    for uid in uids:
        if store.holds_error(uid):
            return
        if not store.exists(uid):
            store.write_error(uid, _format_error(error))
            store.sync()
            return


def _reads_until(reader: Iterator[Any], failure: Exception) -> Iterator[Any]:
    """Yield what ``reader`` reads, raising ``failure`` at the first item it cannot read.

    The items before the failing one are read as usual, so that an enclosing task caches
    them and the error under the item that failed.
    """
    try:
        yield from reader
    except Exception:
        raise failure from None


def _raise_now(step: Step, uids: list[str], results: Iterator[Any]) -> Iterator[Any]:
    """Raise the error of the first item that failed (or was not computed), else pass on.

    As in exca, a run with a cache fails at once, not only when its results are read: a run
    for effect (results left unread) must not end quietly. The check reads no entry: errors
    are told by their magic, and only the failing item is decoded (by the reader).
    """
    store = step._store(())
    for index, uid in enumerate(uids):
        if not store.exists(uid) or store.holds_error(uid):
            read = list(itertools.islice(results, index + 1))  # raises the item's error
            return itertools.chain(read, results)  # it was written meanwhile after all
    return results


def _read_all(step: Step, store: EntryStore, uids: list[str]) -> Iterator[Any]:
    memo = store.memo
    loads = pickle.loads
    for uid in uids:
        found = memo.get(uid)
        if found is not None and found[0] == "pkl" and store.trust:
            yield loads(found[1])  # fast path of warm hits: a fresh object each time
        else:
            yield _read(step, store, uid)


def _status(step: Step, store: EntryStore, uid: str, mode: str) -> str | None:
    try:
        found = store.peek(uid)
    except CorruptEntryError as error:
        if mode == "read-only":
            raise RuntimeError(
                f"{type(step).__name__}: cache entry {uid!r} is corrupt and mode='read-only' "
                f"forbids recomputing it ({error})"
            ) from None
        return None  # recomputed and overwritten
    if found is None and mode == "read-only":
        raise RuntimeError(
            f"{type(step).__name__}: no cached result for item {uid!r} in "
            f"{store.paths.entries_folder} and mode='read-only' forbids computing it"
            f"{store.catalog.unreadable_note()}"
        )
    return found


def _compute(
    step: Step,
    prefix: tuple[Step, ...],
    store: EntryStore,
    pending: dict[str, Any],
    mode: str,
    subs: _SubModes,
) -> None:
    infra = step.infra
    assert infra is not None
    todo = list(pending)
    rewrite = mode in ("force", "retry")
    stalled = 0  # rounds in a row that computed none of the items sent, none held elsewhere
    while todo:
        sent = todo
        # What each item had before this round: rewritten means a newer frame since.
        before = {uid: store.catalog.stamp(uid) for uid in todo} if rewrite else {}
        task = ItemTask(
            step=step,
            prefix=prefix,
            paths=store.paths,
            uids=todo,
            values=[pending[uid] for uid in todo],
            force=mode in ("force", "retry"),
            propagate_force=subs.force,
            propagate_retry=subs.retry,
            keep_in_ram=infra.keep_in_ram,
            fsync=infra.fsync,
            store=store,
        )
        try:
            infra._execute([task])
        finally:
            task._forget_written_elsewhere()
        # Items that other processes held are waited for; those they lost come round again,
        # now claimed here (force and retry still apply: they rewrite what they find).
        todo, waited = _wait_for_others(store, todo, before if rewrite else None)
        stalled = stalled + 1 if todo == sent and not waited else 0
        if stalled >= _STALLED_ROUNDS:
            # Sent again and again, held by nobody, computed by nobody: the backend does not
            # run the task. Another round would do the same; reading reports them as missing.
            break
        if stalled:
            # Two processes whose claims appeared at the same instant both yield (see
            # _claims.py); apart by a random pause, their next claims are ordered.
            time.sleep(random.uniform(0, _TIE_PAUSE_SECONDS))


def _wait_for_others(
    store: EntryStore, uids: list[str], before: dict[str, int] | None = None
) -> tuple[list[str], bool]:
    """Wait for the items other processes are computing; return the items to compute here.

    Called once the backend ran every task over ``uids``: every claim still live is another
    task's. An item is done when it has an entry and no live claim. In mode force or retry
    (``before``: the stamp of each item's newest frame before the round), only an entry
    written since counts: not one that was there before, neither while another claim holds
    the item nor once that claim's process died without rewriting it. Any other item is
    lost: its owner
    died (stale claim), or yielded it, or released it without an entry, perhaps before the
    task even looked at it. Lost items are returned, to be claimed and computed here, except
    those after the first item that ended as an error: the task itself leaves the items after
    an item that fails uncomputed, and reading the results stops at that error anyway.

    Returns:
        The items to compute here, in order, and whether any item was waited for.

    """
    waiting: list[str] = []
    lost: set[str] = set()
    held = running(store.folder)
    for uid in uids:
        state = _state_after_run(store, held, uid, before)
        if state == "live":
            waiting.append(uid)
        elif state == "lost":
            lost.add(uid)
    waited = bool(waiting)
    delay = POLL_SECONDS
    while waiting:
        time.sleep(delay)
        delay = min(delay * 2, _MAX_POLL_SECONDS)
        still = []
        for uid in waiting:
            store.forget(uid)  # its entry may have been rewritten meanwhile
        held = running(store.folder)
        for uid in waiting:
            state = _state_after_run(store, held, uid, before)
            if state == "live":
                still.append(uid)
            elif state == "lost":
                lost.add(uid)
        waiting = still
    kept: list[str] = []
    for uid in uids:
        if len(kept) == len(lost):
            break
        if uid in lost:
            kept.append(uid)
        elif store.holds_error(uid):
            break
    return kept, waited


def _state_after_run(
    store: EntryStore, held: set[str], uid: str, before: dict[str, int] | None
) -> str:
    """Return ``"live"`` (held elsewhere), ``"lost"`` (to compute here) or ``"done"``."""
    exists = store.exists(uid)
    if exists and before is None:
        return "done"  # even while another process rewrites it: the entry is valid meanwhile
    if uid in held:
        return "live"
    if before is not None:  # force, retry: done only once rewritten
        return "done" if exists and store.catalog.stamp(uid) > before.get(uid, 0) else "lost"
    return "done" if exists else "lost"


def _read(step: Step, store: EntryStore, uid: str) -> Any:
    try:
        found = store.read(uid)
    except CorruptEntryError as error:
        raise RuntimeError(
            f"{type(step).__name__}: cache entry {uid!r} is corrupt ({error})"
        ) from None
    if found is None:
        raise RuntimeError(
            f"{type(step).__name__}: item {uid!r} was not computed (an earlier item failed "
            f"or its worker died); run again to compute it"
        )
    status, value = found
    if status == "error":
        cached_error = value.rebuild()
        add_note(
            cached_error,
            f"  -> cached error of item {uid!r} of {type(step).__name__}, re-raised from "
            f"{store.paths.entries_folder}; infra mode='retry' computes it again",
        )
        raise cached_error
    return value


def _validate_with_hint(
    cls: type[Step], data: dict[str, Any], handler: pydantic.ValidatorFunctionWrapHandler
) -> Any:
    """Validate ``data`` as ``cls``; when fields it lacks belong to a subclass, say which.

    As exca's hint: ``{"coeff": 3}`` for a field typed ``Step`` most likely forgot its
    ``"type"``, and ``{"type": "Mult", "extra": 1}`` may name the parent of the class meant.
    """
    try:
        return handler(data)
    except pydantic.ValidationError as error:
        unknown = set(data) - set(cls.model_fields)
        having = _subclasses_with_fields(cls, unknown) if unknown else []
        if not having:
            raise
        key = cls._discriminator_key
        raise ValueError(
            f"validation of {cls.__name__!r} failed: it has no field {sorted(unknown)}; you may "
            f"have forgotten to specify the discriminator key {key!r}, or named the wrong "
            f"class: {having} have those fields\n\nOriginal error: {error}"
        ) from error


def _subclasses_with_fields(cls: type[Step], names: set[str]) -> list[str]:
    """Return the names of the live subclasses of ``cls`` that have every field of ``names``."""
    found: set[str] = set()
    todo = list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        todo.extend(sub.__subclasses__())
        if sub._discriminator_key == cls._discriminator_key and names <= set(sub.model_fields):
            found.add(sub.__name__)
    return sorted(found)


def _add_summary_note(error: pydantic.ValidationError, data: dict[str, Any], key: str) -> None:
    """Add to ``error`` a summary naming each failing step and field by its plain path.

    pydantic names the branches of a union in its paths (``steps.list[...].0.coef``) and
    reports every branch that did not match (``Input should be a valid OrderedDict``); the
    summary, as exca's, keeps the real errors under their plain paths (``steps.0.coef``),
    each with the class of the step it is about.
    """
    branch_noise = {"dict_type", "list_type", "ordered_dict_type"}
    lines = []
    noisy = False
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        noisy = noisy or loc != tuple(item["loc"])
        if item["type"] in branch_noise:
            continue
        path = ".".join(str(p) for p in loc)
        step = _step_named_along(data, loc, key)
        first, newline, rest = item["msg"].partition("\n")
        where = f" (step {step})" if step else ""
        lines.append(f"  {path}: {first}{where}{newline}{rest}")
    if noisy and lines and hasattr(error, "add_note"):
        error.add_note("----------\nSummary:\n" + "\n".join(lines))


def _step_named_along(data: Any, loc: tuple[Any, ...], key: str) -> str | None:
    """Return the class named by the innermost step config on the path ``loc`` in ``data``."""
    name = None
    node = data
    for part in loc:
        if part == "steps" and isinstance(node, (list, tuple)):
            continue  # a list given for a step is the steps of a chain
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and Step._registry.get(node.get(key)):  # type: ignore[arg-type]
            name = node[key]
    return name


def _type_name(cls: type[Step]) -> str:
    """Name ``cls`` in a dump so that the dump validates back to ``cls``.

    The short name when no other live class shares it (so configs look as they always did),
    else ``module.qualname``, since the short name would be refused as ambiguous. Only the
    dump depends on this: uids and cache folder names always use the short name.
    """
    name = cls.__name__
    if len(Step._registry.get(name) or ()) > 1:
        return f"{cls.__module__}.{cls.__qualname__}"
    return name


def _registered_step(
    name: str, key: str = "type", base: type[Step] | None = None
) -> type[Step] | None:
    """Find the Step subclass a config names under ``key`` (short name or ``module.qualname``).

    Classes of another hierarchy than ``base`` (one with its own ``discriminator_key``) that
    share the short name do not make it ambiguous.
    """
    if "." in name:
        same_short_name = Step._registry.get(name.rsplit(".", 1)[1])
        return None if same_short_name is None else same_short_name.get(name)
    candidates = dict(Step._registry.get(name) or {})
    if base is not None and base._discriminator_key != "type":
        candidates = {q: c for q, c in candidates.items() if issubclass(c, base)} or candidates
    if len(candidates) > 1:
        qualified = sorted(candidates)
        raise ValueError(
            f"{key}={name!r} is ambiguous: the Step subclasses {qualified} share that name; "
            f"give the qualified name instead, e.g. {key}={qualified[0]!r}"
        )
    return next(iter(candidates.values()), None)
