"""A run cannot change what later runs see: ``param_scope.frozen()`` inside one stays in it.

Each test uses keys of its own, and the process-wide base is put back after each one: what
these tests publish on purpose (or a failing run leaves) cannot reach any other test.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from assay_ops import Capture, operation
from assay_scope import ScopedThread, param_scope


@pytest.fixture(autouse=True)
def _put_the_base_back() -> Iterator[None]:
    base = importlib.import_module("assay_scope._state").ROOT_VALUES
    published = dict(base)
    yield
    base.clear()
    base.update(published)


def _key() -> str:
    return f"leak_{uuid.uuid4().hex[:10]}"


def _in_new_thread(key: str) -> Any:
    """What a plain thread started now reads for ``key`` (it sees only the frozen base)."""
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(param_scope().get(key, "unset")))
    thread.start()
    thread.join()
    return seen[0]


@operation
def freezes(params: dict[str, Any], capture: Capture) -> None:
    param_scope.frozen()  # e.g. to hand the run's values to threads it starts
    capture.metric("seen_in_thread", _in_new_thread(params["leak_test_key"]))


@operation
def reads(params: dict[str, Any], capture: Capture) -> None:
    capture.metric("seen", param_scope().get(params["other"], "unset"))


def test_inside_the_run_frozen_still_reaches_the_threads_it_starts() -> None:
    key = _key()
    record = freezes.run(params={"leak_test_key": key, key: 5})
    assert record.status == "success"
    assert record.metric("seen_in_thread") == 5


def test_after_a_run_that_froze_its_values_new_threads_do_not_see_them() -> None:
    key = _key()
    freezes.run(params={"leak_test_key": key, key: 5})
    assert _in_new_thread(key) == "unset"
    assert param_scope().get(key, "unset") == "unset"  # nor does the caller's thread


def test_a_later_run_does_not_see_the_params_an_earlier_run_froze() -> None:
    key = _key()
    freezes.run(params={"leak_test_key": key, key: 5})
    assert reads.run(params={"other": key}).metric("seen") == "unset"


def test_the_base_published_before_the_run_is_the_base_after_it() -> None:
    key, other = _key(), _key()
    with param_scope(**{key: "before"}):
        param_scope.frozen()
    record = freezes.run(params={"leak_test_key": key, key: "run", other: 1})
    assert record.metric("seen_in_thread") == "run"  # the run could publish its own values
    assert _in_new_thread(key) == "before"
    assert _in_new_thread(other) == "unset"


def test_a_failed_run_that_froze_its_values_leaves_the_base_as_it_was() -> None:
    key = _key()

    @operation
    def freezes_then_fails(params: dict[str, Any]) -> None:
        param_scope.frozen()
        raise RuntimeError("broken after freezing")

    assert freezes_then_fails.run(params={key: 1}).status == "failed"
    assert _in_new_thread(key) == "unset"


def test_a_run_that_exits_or_is_interrupted_after_freezing_leaves_the_base_as_it_was() -> None:
    key = _key()

    @operation
    def freezes_then_stops(params: dict[str, Any]) -> None:
        param_scope.frozen()
        if params["how"] == "exit":
            raise SystemExit(0)
        raise KeyboardInterrupt

    assert freezes_then_stops.run(params={key: 1, "how": "exit"}).status == "failed"
    assert _in_new_thread(key) == "unset"
    with pytest.raises(KeyboardInterrupt) as stopped:
        freezes_then_stops.run(params={key: 2, "how": "interrupt"})
    assert stopped.value.run_record.status == "cancelled"  # type: ignore[attr-defined]
    assert _in_new_thread(key) == "unset"


def test_two_runs_at_once_in_two_threads_do_not_see_each_others_frozen_values() -> None:
    shared, only_a, only_b = _key(), _key(), _key()
    both_froze = threading.Barrier(2, timeout=10)
    a_ended = threading.Event()

    @operation
    def freezes_concurrently(params: dict[str, Any], capture: Capture) -> None:
        param_scope.frozen()
        both_froze.wait()  # the other run has frozen its values too
        mine, theirs = (only_a, only_b) if params["name"] == "a" else (only_b, only_a)
        seen = ScopedThread(target=lambda: capture.metric("thread", param_scope().get(shared)))
        seen.start()
        seen.join()
        capture.metric("shared", param_scope().get(shared, "unset"))
        capture.metric("mine", param_scope().get(mine, "unset"))
        capture.metric("theirs", param_scope().get(theirs, "unset"))
        if params["name"] == "b":  # still running after the other run ended
            assert a_ended.wait(10)
            capture.metric("plain_after_a", _in_new_thread(only_a))
            capture.metric("plain_shared_after_a", _in_new_thread(shared))

    records: dict[str, Any] = {}

    def run(name: str, own: str) -> None:
        records[name] = freezes_concurrently.run(params={"name": name, shared: name, own: 1})
        if name == "a":
            a_ended.set()

    threads = [threading.Thread(target=run, args=args) for args in (("a", only_a), ("b", only_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("a", "b"):
        record = records[name]
        assert record.status == "success", record.error
        assert record.metric("shared") == record.metric("thread") == name
        assert record.metric("mine") == 1
        assert record.metric("theirs") == "unset"
    # The run that ended first withdrew its values, and only its own: the other's stay on top.
    assert records["b"].metric("plain_after_a") == "unset"
    assert records["b"].metric("plain_shared_after_a") == "b"
    for key in (shared, only_a, only_b):
        assert _in_new_thread(key) == "unset"


def test_a_run_inside_a_run_withdraws_only_what_it_froze() -> None:
    key, inner_key = _key(), _key()

    @operation
    def inner(params: dict[str, Any]) -> None:
        param_scope.frozen()

    @operation
    def outer(params: dict[str, Any], capture: Capture) -> None:
        param_scope.frozen()
        inner.run(params={key: "inner", inner_key: 1})
        capture.metric("own", param_scope().get(key))
        capture.metric("thread", _in_new_thread(key))
        capture.metric("inner_key", _in_new_thread(inner_key))

    record = outer.run(params={key: "outer"})
    assert (record.metric("own"), record.metric("thread")) == ("outer", "outer")
    assert record.metric("inner_key") == "unset"
    assert _in_new_thread(key) == "unset"


def test_what_is_frozen_outside_any_run_while_a_run_runs_stays() -> None:
    key, run_key = _key(), _key()
    froze, published = threading.Event(), threading.Event()

    @operation
    def waits(params: dict[str, Any], capture: Capture) -> None:
        param_scope.frozen()
        froze.set()
        assert published.wait(10)
        capture.metric("seen", param_scope().get(key, "unset"))  # its own copy of the base

    def publish() -> None:
        assert froze.wait(10)
        with param_scope(**{key: "outside"}):
            param_scope.frozen()
        published.set()

    thread = threading.Thread(target=publish)
    thread.start()
    record = waits.run(params={run_key: 1})
    thread.join()
    assert record.metric("seen") == "unset"
    assert _in_new_thread(key) == "outside"
    assert _in_new_thread(run_key) == "unset"
