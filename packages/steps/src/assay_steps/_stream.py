"""Items streaming through the steps of a chain: item 1 passes every step before item 2 starts.

A chain is a pipeline of stages, one per step, each a generator over the items in input
order. An item is ``(index, start, value)``: ``start`` is the first step that computes it (the
steps before it have it cached, see ``_Entry``); the stages before ``start`` pass it on
untouched. A step without a cache computes each item as it comes (``_run``), or pulls its
items lazily (``_run_batch``, a nested chain); a step with a cache computes its items through
its backend, a window of items at a time, and passes its results on as it reads them back.
Nothing holds every item of a run, so a chain over a long or endless iterable runs in bounded
memory (a cached step over a list takes the whole list, so that its backend sees every item
at once).

An item that fails becomes a ``Failed`` value that travels on in its place and ends the
stream: the items before it go on through every later step (so that the enclosing task caches
their results, and the error under the item that failed), the items after it stop.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import BatchProtocolError
from ._notes import add_note, step_label
from ._store import CorruptEntryError, EntryStore, UntrustedEntryError

if TYPE_CHECKING:
    from ._chain import Chain
    from ._step import Step

#: Items a cached step inside a stream over an iterator (of unknown length) takes at a time.
WINDOW = 256
#: A chain looks for an item's cached result in its steps' caches until this many items in a
#: row were found in none of them (the run is then cold: the steps compute them anyway).
PROBE_MISSES = 16

Item = tuple[int, int, Any]  # (index in the input, first step that computes it, value)
Pair = tuple[int, Any]  # (index in the input, value)
UidAt = Callable[[int], str]  # the uid of the item at an index of the input


class Failed:
    """The error of one item, travelling down the stages in that item's place."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def values_of(pairs: Iterator[tuple[int, Any]]) -> Iterator[Any]:
    """Yield the values of ``(index, value)`` pairs; raise the error of a failed item."""
    for _, value in pairs:
        if isinstance(value, Failed):
            raise value.error
        yield value


def chain_pairs(
    chain: Chain,
    prefix: tuple[Step, ...],
    pairs: Iterable[Pair],
    uid_at: UidAt,
    forced: bool,
    retried: bool,
    window: int | None,
    cached: bool,
) -> Iterator[Pair]:
    """Stream ``pairs`` through ``chain``'s steps; yield ``(index, result)`` in input order.

    A ``Failed`` result ends the stream. ``forced`` / ``retried``: an enclosing step is
    in mode ``"force"`` / ``"retry"``. ``window``: how many items a cached step takes at a
    time (None: all). ``cached``: the results are cached by the caller (see ``_batch_pairs``).
    """
    steps = chain._resolved_steps()
    prefixes = []
    for step in steps:
        prefixes.append(prefix)
        prefix = (*prefix, *step._uid_steps())
    entry = _Entry(steps, prefixes, uid_at, forced)
    items: Iterator[Item] = (entry.start(index, value) for index, value in pairs)
    for k, step in enumerate(steps):
        later_cached = cached or any(_caches(later) for later in steps[k + 1 :])
        context = StreamContext(prefixes[k], uid_at, forced, retried, window, later_cached)
        items = _stage(step, k, items, context)
        forced = forced or step._forces()
        retried = retried or step._retries()  # as force, retry carries over to what follows
    return ((index, value) for index, _, value in items)


class StreamContext(NamedTuple):
    """What a stage runs its step in (see ``chain_pairs``)."""

    prefix: tuple[Step, ...]
    uid_at: UidAt
    forced: bool
    retried: bool
    window: int | None
    cached: bool  # its results are cached further on


def _caches(step: Step) -> bool:
    """Whether ``step`` (or a step of it, if it is composite) caches its results."""
    return step._resolved()._caches_results()


class _Entry:
    """Where each item enters a chain: after the last step that has it cached (as in exca).

    Steps from a forced one on do not count (their results are recomputed). As in a run, a
    long series of misses at a step stops the lookups there: a cold run then costs a few
    lookups per step, and an item missed that way only runs more steps.
    """

    def __init__(
        self, steps: list[Step], prefixes: list[tuple[Step, ...]], uid_at: UidAt, forced: bool
    ) -> None:
        from ._engine import serves_cache

        last = -1  # the last step an item may start after
        for k, step in enumerate(steps):
            if forced or step._forces():
                break
            if serves_cache(step):
                last = k
        self._candidates = [k for k in range(last, -1, -1) if serves_cache(steps[k])]
        self._steps = steps
        self._prefixes = prefixes
        self._uid_at = uid_at
        self._misses = dict.fromkeys(self._candidates, 0)
        self._stores: dict[int, EntryStore] = {}

    def start(self, index: int, value: Any) -> Item:
        """Return the item at ``index``, starting at its first step not cached."""
        for k in self._candidates:
            if self._misses[k] >= PROBE_MISSES:
                continue
            store = self._stores.get(k)
            if store is None:  # opened once: its key hashes the configuration
                store = self._stores[k] = self._steps[k]._store(self._prefixes[k])
            try:
                found = store.read(self._uid_at(index))
            except (CorruptEntryError, UntrustedEntryError):
                found = None  # the step itself reports or recomputes it
            if found is not None and found[0] == "success":
                self._misses[k] = 0
                return index, k + 1, found[1]
            self._misses[k] += 1
        return index, 0, value


def _stage(step: Step, k: int, items: Iterator[Item], context: StreamContext) -> Iterator[Item]:
    from ._step import Step

    if step.infra is not None:
        return _cached_stage(step, k, items, context)
    cls = type(step)
    if cls._stream_pairs is Step._stream_pairs and cls._run_batch is Step._run_batch:
        return _run_stage(step, k, items)  # one item at a time through ``_run``
    return _pulling_stage(k, items, lambda pairs: step._stream_pairs(pairs, context))


def _run_stage(step: Step, k: int, items: Iterator[Item]) -> Iterator[Item]:
    """Compute each item with ``_run`` as it comes (a step without a cache or batch)."""
    from ._state import NOVALUE

    for index, start, value in items:
        if start > k or isinstance(value, Failed):
            yield index, start, value  # cached further on, or failed: passed on as it is
            if isinstance(value, Failed):
                return
            continue
        try:
            result = step._run() if value is NOVALUE else step._run(value)
        except BatchProtocolError:
            raise  # which input a result belongs to is unknown: none goes on, none is cached
        except Exception as error:
            add_note(error, f"  -> in {step_label(step)}")
            yield index, start, Failed(error)
            return
        yield index, start, result


def _pulling_stage(
    k: int, items: Iterator[Item], compute: Callable[[Iterator[Pair]], Iterator[Pair]]
) -> Iterator[Item]:
    """Feed the items of step ``k`` to ``compute``, which pulls them lazily, in input order.

    The items passing by (cached further on) wait in line with those being computed, so
    that the stage yields every item in input order. ``compute`` yields one result per item
    it pulled, in order, and ends at its first ``Failed`` result. It is not called
    at all when no item is its own (a ``_run_batch`` is never called without inputs).
    """
    line: collections.deque[list[Any]] = collections.deque()  # [index, start, value, ready]
    computing: collections.deque[list[Any]] = collections.deque()  # pulled, not yet answered
    stopped: list[Item] = []  # the failed item that ended the input, if one did

    def take() -> list[Any] | None:
        """Put the next item in line and return its slot; None at the end or a failure."""
        item = next(items, None)
        if item is None:
            return None
        if isinstance(item[2], Failed):
            stopped.append(item)
            return None
        slot = [*item, item[1] > k]
        line.append(slot)
        return slot

    def pulled(first: list[Any]) -> Iterator[Pair]:
        slot: list[Any] | None = first
        while slot is not None:
            if not slot[3]:
                computing.append(slot)
                yield slot[0], slot[2]
            slot = take()

    slot = take()
    while slot is not None and slot[3]:  # before its first own item, nothing waits
        yield _item(line.popleft())
        slot = take()
    if slot is not None:
        for _, result in compute(pulled(slot)):
            answered = computing.popleft()
            if isinstance(result, Failed):
                while line[0] is not answered:  # what came before the failure goes on
                    yield _item(line.popleft())
                yield answered[0], answered[1], result
                return
            answered[2], answered[3] = result, True
            while line and line[0][3]:
                yield _item(line.popleft())
    yield from (_item(slot) for slot in line)
    yield from stopped


def _item(slot: list[Any]) -> Item:
    return slot[0], slot[1], slot[2]


def _batch_pairs(step: Step, pairs: Iterator[Pair], cached: bool) -> Iterator[Pair]:
    """Run ``step._run_batch`` over ``pairs`` as it pulls them; yield one result per item.

    When its results are ``cached`` further on, a batch not known to yield one result per
    input (see ``Step._one_result_per_input``) is held until it ended with exactly one result
    per input, since a result too many or too few pairs every result with the wrong item;
    any other batch passes its results on as they come. An item that raises ends the stream;
    the results before it go on.
    """
    name = type(step).__name__
    pulled: collections.deque[int] = collections.deque()  # indices pulled, not yet answered
    counts = [0, 0]  # inputs pulled, results yielded
    ended = False
    upstream: list[BaseException] = []  # an error of the steps before, not of this one

    def values() -> Iterator[Any]:
        nonlocal ended
        source = iter(pairs)
        while True:
            try:
                index, value = next(source)
            except StopIteration:
                ended = True
                return
            except BaseException as error:
                upstream.append(error)
                raise
            pulled.append(index)
            counts[0] += 1
            yield value

    exact = "exact_batch" in step._flags or not cached
    held: list[Pair] = []
    inputs = values()
    try:
        for result in step._run_batch(inputs):
            if not pulled:
                raise BatchProtocolError(
                    f"{name}._run_batch yielded more results than inputs it consumed; "
                    "expected exactly one result per input"
                )
            counts[1] += 1
            pair = (pulled.popleft(), result)
            if exact:
                yield pair
            else:
                held.append(pair)
    except BatchProtocolError:
        raise
    except Exception as error:
        if upstream and error is upstream[0]:
            raise  # it went through this step's batch, but it is not this step's
        add_note(error, f"  -> in {step_label(step)}")
        yield from held
        if not pulled:  # raised between two items: the next one is the one that failed
            next(inputs, None)
        if not pulled:
            raise  # no item left to carry it: it ends the run as it is
        yield pulled[0], Failed(error)
        return
    if not ended:  # it stopped pulling: is there anything it left?
        next(inputs, None)
    if pulled or not ended:
        raise BatchProtocolError(
            f"{name}._run_batch yielded {counts[1]} results for {counts[0]} inputs; expected "
            "exactly one result per input"
        )
    yield from held


def _cached_stage(
    step: Step, k: int, items: Iterator[Item], context: StreamContext
) -> Iterator[Item]:
    """Compute the items of step ``k`` (which has a backend) a window at a time.

    Each window goes to the backend at once (as exca dispatches a cached step over every
    item); its results are read back from the cache as the next stage asks for them.
    """
    window = context.window
    while True:
        passing: list[Item] = []  # the window's items in input order, its own ones included
        own: list[Pair] = []
        stopped: Item | None = None
        ended = True
        for index, start, value in items:
            if isinstance(value, Failed):
                stopped = (index, start, value)
                break
            passing.append((index, start, value))
            if start <= k:
                own.append((index, value))
                if window is not None and len(own) >= window:
                    ended = False
                    break
        results = _window_results(step, own, context) if own else iter(())
        for index, start, value in passing:
            if start > k:
                yield index, start, value
                continue
            try:
                result = next(results)
            except BatchProtocolError:
                raise
            except Exception as error:  # its cached error, or the window's
                yield index, start, Failed(error)
                return
            yield index, start, result
        if stopped is not None:
            yield stopped
            return
        if ended:
            return


def _window_results(step: Step, own: list[Pair], context: StreamContext) -> Iterator[Any]:
    """Compute a window of ``step``'s items through its backend; return their reader.

    An error before anything could be read (the backend's, the cache's) becomes the error
    of the window's first item.
    """
    from ._engine import dispatch

    uids = [context.uid_at(index) for index, _ in own]
    values = [value for _, value in own]
    try:
        return dispatch(step, context.prefix, lambda: uids, values, context.forced, context.retried)
    except BatchProtocolError:
        raise
    except Exception as error:
        return _raising(error)


def _raising(error: Exception) -> Iterator[Any]:
    raise error
    yield  # pragma: no cover - makes this a generator
