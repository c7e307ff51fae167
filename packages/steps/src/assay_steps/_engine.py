"""The cached execution of a step: find the missing items, compute them, read the results back.

A run looks up its items in the step's cache, hands the missing ones to the backend as
[`ItemTask`][assay_steps.ItemTask] objects, waits for the items other processes compute, and
reads every result back from the cache. A step that fills its cache its own way overrides
``Step._cached_items`` (a Chain whose entries its last step writes); the engine names no
subclass.
"""

from __future__ import annotations

import itertools
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ._claims import running
from ._items import StepItems
from ._modes import effective_mode, fold_modes
from ._notes import add_note
from ._state import NOINPUT_UID, NOVALUE, runtime_of
from ._storage import write_config
from ._store import CorruptEntryError, EntryStore
from ._task import ItemTask
from ._uid import uid_of

if TYPE_CHECKING:
    from ._step import Step

#: Seconds between two checks of an item that another process is computing.
POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 1.0
#: Rounds that compute nothing before a run gives up on its missing items.
_STALLED_ROUNDS = 4
#: Longest random pause before another round after one that computed nothing: longer than
#: the coarsest file system time (one second) that could order two claims as simultaneous.
_TIE_PAUSE_SECONDS = 1.5

UidSource = Callable[[], list[str]]


class SubModes(NamedTuple):
    """What a step passes on to the sub-steps it runs: force them, retry their errors."""

    force: bool
    retry: bool


def _memo(source: Callable[[], list[str]]) -> UidSource:
    cache: list[list[str]] = []

    def get() -> list[str]:
        if not cache:
            cache.append(source())
        return cache[0]

    return get


def keyed_by_value(step: Step) -> bool:
    """Whether ``step`` keys an input by hashing it (no ``item_uid`` of its own)."""
    from ._step import Step

    return type(step)._item_uid is Step._item_uid and type(step).item_uid is Step.item_uid


def uid_function(step: Step) -> Callable[[Any], str]:
    """Return how ``step`` keys an input: ``item_uid``, or the hash of the value itself."""
    if keyed_by_value(step):
        return lambda value: NOINPUT_UID if value is NOVALUE else uid_of(value)
    return step._item_uid


def run_cached(step: Step, values: Iterable[Any]) -> StepItems:
    """Run ``step`` (resolved, with a cache) over ``values``: the body of ``Step.run_many``."""
    values = list(values)
    if not step._is_generator() and any(v is NOVALUE for v in values):
        raise TypeError(f"{type(step).__name__}._run needs an input: call run(value)")
    if keyed_by_value(step):
        # Hashed inline, without a call per input: the hot path of warm runs.
        uids = _memo(lambda: [NOINPUT_UID if v is NOVALUE else uid_of(v) for v in values])
    else:
        uids = _memo(lambda: [step._item_uid(v) for v in values])
    store = step._store(())
    runtime = runtime_of(step)
    runtime.pinned = store
    try:
        results = dispatch(step, (), uids, values, forced=False, top=True)
        results = _raise_now(step, uids(), results)
    finally:
        runtime.pinned = None
    # Iterating again reads the entries again, as in exca (whatever the mode).
    return StepItems(results, len(values), again=lambda: read_all(step, store, uids()))


def dispatch(
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
    subs = SubModes(forced or infra.mode == "force", retried or infra.mode == "retry")
    return step._cached_items(prefix, get_uids, values, top, mode, subs)


def cached_items(
    step: Step,
    prefix: tuple[Step, ...],
    get_uids: UidSource,
    values: list[Any],
    top: bool,
    mode: str,
    subs: SubModes,
) -> Iterator[Any]:
    """Look up ``step``'s items in its cache, compute the missing ones, return their reader.

    The default of ``Step._cached_items``: ``mode`` is the mode of this step's own cache,
    ``subs`` what its sub-steps are run in, ``top`` as in ``dispatch``.
    """
    store = step._store(prefix)
    store.refresh()  # what other processes wrote since this process last looked
    uids = get_uids()
    attempted = runtime_of(step).attempted.setdefault(store.paths.step_uid, set())
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
            read(step, store, uid)
    if pending:
        write_config(step, store, prefix)
        _compute(step, prefix, store, pending, mode, subs)
        if mode in ("force", "retry"):
            attempted.update(pending)
    return read_all(step, store, uids)


def serves_cache(step: Step) -> bool:
    """Whether ``step`` keeps results that a later run may read (a cache not in mode force)."""
    infra = step.infra
    return infra is not None and infra.folder is not None and infra.mode != "force"


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


def read_all(step: Step, store: EntryStore, uids: list[str]) -> Iterator[Any]:
    memo = store.memo
    loads = pickle.loads
    for uid in uids:
        found = memo.get(uid)
        if found is not None and found[0] == "pkl" and store.trust:
            yield loads(found[1])  # fast path of warm hits: a fresh object each time
        else:
            yield read(step, store, uid)


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
    subs: SubModes,
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


def read(step: Step, store: EntryStore, uid: str) -> Any:
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
