"""``auto_param`` functions and classes travel by value to worker processes.

Process pools and job schedulers send functions and classes that the worker cannot import (those
of a script's ``__main__``, a notebook, a function defined inside another) with cloudpickle,
*by value*: their code and the globals it uses. The copy must work in the worker's own scope
state: read the scopes current there, see later writes, be seen by ``record()``.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
from assay_scope import auto_param, param_scope

cloudpickle = pytest.importorskip("cloudpickle")


def _copy(obj: Any) -> Any:
    return cloudpickle.loads(cloudpickle.dumps(obj))


def _local_function() -> Any:
    # Defined in a function: cloudpickle sends it by value, as it does a script's functions.
    @auto_param("model")
    def width(w: int = 8, depth: int = 2) -> tuple[int, int]:
        return w, depth

    return width


def test_a_function_sent_by_value_reads_the_scope_where_it_is_called() -> None:
    width = _copy(_local_function())
    assert width() == (8, 2)
    with param_scope(**{"model.w": "64", "model.depth": 3}):
        assert width() == (64, 3)
        assert width(16) == (16, 3)


def test_a_copy_sees_writes_made_after_its_first_call() -> None:
    # The copy must use the live write counter: a copy of it would keep a stale cached value.
    width = _copy(_local_function())
    with param_scope(**{"model.w": 1}):
        assert width() == (1, 2)
        param_scope.current().put("model.w", 5)
        assert width() == (5, 2)


def test_reads_of_a_copy_are_recorded() -> None:
    width = _copy(_local_function())
    with param_scope(**{"model.w": 4}), param_scope.record() as used:
        width()
    assert dict(used) == {"model.w": 4, "model.depth": 2}
    assert used.defaulted == {"model.depth"}


def test_a_function_called_in_a_scope_with_unpicklable_values_still_pickles() -> None:
    # The per-function cache of resolved values holds the scope it resolved in; it must not
    # travel with the function.
    width = _local_function()
    with param_scope(**{"model.w": 3}, lock=threading.Lock()):
        assert width() == (3, 2)
        copy = _copy(width)
    assert copy() == (8, 2)


def test_a_class_sent_by_value_reads_the_scope() -> None:
    @auto_param("net")
    class Net:
        def __init__(self, layers: int = 1) -> None:
            self.layers = layers

    copy = _copy(Net)
    with param_scope(**{"net.layers": 6}):
        assert copy().layers == 6
        assert copy(2).layers == 2


def test_a_class_level_accessor_pickles_and_reads_the_scope_where_it_is_used() -> None:
    lr = _copy(param_scope.train.lr)
    assert lr(0.1) == 0.1
    with param_scope(**{"train.lr": "0.5"}):
        assert lr(0.1) == 0.5
        assert lr | 0.1 == 0.5


def test_a_function_using_a_global_accessor_travels_by_value() -> None:
    # A script's ``LR = param_scope.train.lr`` at module level, read inside a step's _run.
    train = param_scope.train

    def read() -> float:
        value: float = train.lr(0.1)
        return value

    copy = _copy(read)
    with param_scope(**{"train.lr": 0.25}):
        assert copy() == 0.25


def test_an_accessor_bound_to_a_scope_pickles_with_its_values() -> None:
    ps = param_scope(**{"train.lr": 0.5, "train.epochs": 3})
    train = _copy(ps.train)
    assert (train.lr(0.1), train.epochs(1)) == (0.5, 3)
    assert train.depth | 2 == 2


def test_a_scope_that_was_read_pickles_with_every_value_it_sees() -> None:
    with param_scope(outer=1), param_scope(**{"train.lr": 0.5}) as ps:
        assert ps.train.lr() == 0.5  # caches an accessor in the scope
        copy = pickle.loads(pickle.dumps(ps))
    assert dict(copy) == {"outer": 1, "train.lr": 0.5}
    with param_scope(outer=2), copy:
        assert param_scope.outer() == 1  # the copy is detached: it chains to nothing
