"""isolated_base(): what param_scope.frozen() publishes inside the block is withdrawn after it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from assay_scope import ScopedThread, bind_scope, isolated_base, param_scope


def in_new_thread(key: str) -> Any:
    """What a plain thread started now reads for ``key`` (it sees only the frozen base)."""
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(param_scope().get(key, "unset")))
    thread.start()
    thread.join()
    return seen[0]


def test_inside_the_block_frozen_publishes_and_after_it_the_base_is_as_before() -> None:
    with param_scope(kept="before"):
        param_scope.frozen()
    with isolated_base(), param_scope(kept="block", added=1):
        param_scope.frozen()
        assert (in_new_thread("kept"), in_new_thread("added")) == ("block", 1)
    assert (in_new_thread("kept"), in_new_thread("added")) == ("before", "unset")
    assert param_scope().get("kept") is None  # this thread keeps the base it started with


def test_inside_the_block_frozen_values_are_gone_once_the_scope_that_set_them_is_left() -> None:
    with isolated_base():
        with param_scope(a=1):
            param_scope.frozen()
        # as outside a block: the caller keeps its base, threads started now get the new one
        assert (param_scope.a(0), in_new_thread("a")) == (0, 1)
    assert (param_scope.a(0), in_new_thread("a")) == (0, "unset")


@pytest.mark.parametrize("error", [RuntimeError("boom"), SystemExit(2), KeyboardInterrupt()])
def test_the_base_is_put_back_however_the_block_ends(error: BaseException) -> None:
    def freezes_then_raises() -> None:
        with isolated_base(), param_scope(a=1):
            param_scope.frozen()
            raise error

    with pytest.raises(type(error)):
        freezes_then_raises()
    assert in_new_thread("a") == "unset"
    assert param_scope.current().get("a") is None


def test_threads_carrying_the_blocks_context_see_what_the_block_sees() -> None:
    def scoped_thread_and_bound_call_read_a() -> list[Any]:
        seen: list[Any] = []
        thread = ScopedThread(target=lambda: seen.append(param_scope.a(0)))
        thread.start()
        thread.join()
        seen.append(bind_scope(lambda: param_scope.a(0))())
        return seen

    with isolated_base():
        with param_scope(a=1):
            param_scope.frozen()
            assert scoped_thread_and_bound_call_read_a() == [1, 1]
        assert scoped_thread_and_bound_call_read_a() == [0, 0]
        assert in_new_thread("a") == 1


def test_blocks_in_two_threads_neither_see_nor_restore_each_others_values() -> None:
    froze = threading.Barrier(2, timeout=10)
    a_left = threading.Event()
    seen: dict[str, Any] = {}

    def block(name: str) -> None:
        with isolated_base(), param_scope(shared=name, **{name: 1}):
            param_scope.frozen()
            froze.wait()
            other = "b" if name == "a" else "a"
            with param_scope():
                seen[name] = (param_scope.shared(""), param_scope.current().get(other))
            if name == "b":
                assert a_left.wait(10)
                seen["plain, a left"] = (in_new_thread("shared"), in_new_thread("a"))
        if name == "a":
            a_left.set()

    threads = [threading.Thread(target=block, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": ("a", None), "b": ("b", None), "plain, a left": ("b", "unset")}
    assert [in_new_thread(key) for key in ("shared", "a", "b")] == ["unset"] * 3


def test_a_nested_block_withdraws_only_its_own_values() -> None:
    with isolated_base():
        with param_scope(a="outer"):
            param_scope.frozen()
        with isolated_base(), param_scope(a="inner", b=1):
            param_scope.frozen()
            assert in_new_thread("a") == "inner"
        assert (param_scope.a(""), in_new_thread("a"), in_new_thread("b")) == (
            "",
            "outer",
            "unset",
        )
    assert in_new_thread("a") == "unset"


def test_a_thread_that_outlives_its_block_publishes_nothing_to_the_process() -> None:
    go, done = threading.Event(), threading.Event()

    def late() -> None:
        go.wait(10)
        with param_scope(late=1):
            param_scope.frozen()
        done.set()

    with isolated_base():
        thread = ScopedThread(target=late)
        thread.start()
    go.set()
    assert done.wait(10)
    thread.join()
    assert in_new_thread("late") == "unset"


def test_top_level_writes_inside_the_block_stay_in_it() -> None:
    with isolated_base() as scope:
        param_scope.x = 1
        assert scope.x(0) == 1
    assert param_scope.x(0) == 0


def test_an_instance_is_entered_once_at_a_time() -> None:
    block = isolated_base()
    with block, pytest.raises(RuntimeError, match="already entered"):
        block.__enter__()
    with block:  # and again once it is left
        pass
