"""Chain: steps run in sequence, each with its own cache, keyed by the chain's input."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from assay_ops import is_infrastructure_error

from ._engine import SubModes, UidSource, read, read_all
from ._errors import BatchProtocolError
from ._lookup import LookupHandle
from ._state import runtime_of
from ._step import Step
from ._store import CorruptEntryError, EntryStore
from ._stream import Pair, StreamContext, UidAt, chain_pairs, values_of
from ._task import format_error


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

    def _caches_results(self) -> bool:
        return self.infra is not None or any(s._caches_results() for s in self._resolved_steps())

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
        return values_of(chain_pairs(self, prefix, pairs, uid_at, forced, retried, window, cached))

    def _stream_pairs(self, pairs: Iterator[Pair], context: StreamContext) -> Iterator[Pair]:
        """Stream the pairs through the steps, each pulling them lazily (see ``_stream``)."""
        prefix, uid_at, forced, retried, window, cached = context
        return chain_pairs(self, prefix, pairs, uid_at, forced, retried, window, cached)

    def _cached_items(
        self,
        prefix: tuple[Step, ...],
        get_uids: UidSource,
        values: list[Any],
        top: bool,
        mode: str,
        subs: SubModes,
    ) -> Iterator[Any]:
        """Compute the items through the steps when the chain's entry is its last step's.

        Computing the steps then writes the chain's entries (see ``_run_chain_missing``);
        otherwise (another folder, or mode ``"read-only"``) the chain's own cache is used.
        """
        if mode != "read-only" and self._shares_last_cache():
            return _run_chain_missing(self, prefix, get_uids, values, top, mode, subs)
        return super()._cached_items(prefix, get_uids, values, top, mode, subs)

    def _lookup(self, prefix: tuple[Step, ...], uid: str) -> LookupHandle:
        subs = []
        sub_prefix = prefix
        for step in self._resolved_steps():
            subs.append(step._lookup(sub_prefix, uid))
            sub_prefix = (*sub_prefix, *step._uid_steps())
        own = super()._lookup(prefix, uid)
        store = own._store if own._store is not None else subs[-1]._store
        return LookupHandle(self, store, uid, tuple(subs))


def _run_chain_missing(
    chain: Chain,
    prefix: tuple[Step, ...],
    get_uids: UidSource,
    values: list[Any],
    top: bool,
    mode: str,
    subs: SubModes,
) -> Iterator[Any]:
    """Run ``chain`` over the items its shared entry lacks (or, in retry, has as an error).

    As in exca, an item with a chain entry runs none of the steps, even when an earlier step
    has a cache of its own without the item: a success is read, a cached error re-raised
    (in mode ``"retry"``, computed again). Missing and corrupt entries go through the steps;
    in mode ``"force"``, every item does. Force and retry apply once per chain instance. Each
    item goes through the steps once, however many times it is given. ``subs``: the modes
    the steps are run in (see ``dispatch``).
    """
    store = chain._store(prefix)
    uids = get_uids()
    attempted = runtime_of(chain).attempted.setdefault(store.paths.step_uid, set())
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
            read(chain, store, uid)
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
    reader = read_all(chain, store, uids)
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
            store.write_error(uid, format_error(error))
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


# What a list (or a dict of steps) becomes in a field typed Step, or typed with a hierarchy
# that has no chain class of its own (see ``Chain.__pydantic_init_subclass__``).
Step._chain_class = Chain
