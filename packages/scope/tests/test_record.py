"""param_scope.record(): which parameters a block read, with the values it got."""

from __future__ import annotations

import asyncio
import threading

from assay_scope import auto_param, param_scope


@auto_param("fit")
def fit(data: str, lr: float = 0.1, epochs: int = 10) -> tuple[float, int]:
    return lr, epochs


def test_records_values_read_and_defaults_used() -> None:
    with param_scope("lr=0.5", "name=x"), param_scope.record() as used:
        assert param_scope.lr(0.1) == 0.5
        assert (param_scope.width | 32) == 32
        _ = param_scope.current()["name"]
    assert dict(used) == {"lr": 0.5, "width": 32, "name": "x"}
    assert used.defaulted == {"width"}
    assert "Record(" in repr(used)


def test_auto_param_calls_record_scope_values_and_defaults_but_not_explicit_arguments() -> None:
    with param_scope(**{"fit.epochs": "3"}), param_scope.record() as used:
        fit("d", 0.01)
    assert dict(used) == {"fit.epochs": 3}
    with param_scope(**{"fit.epochs": "3"}), param_scope.record() as used:
        fit("d")
    assert dict(used) == {"fit.lr": 0.1, "fit.epochs": 3}
    assert used.defaulted == {"fit.lr"}


def test_reads_outside_the_block_are_not_recorded() -> None:
    with param_scope(a=1):
        with param_scope.record() as used:
            param_scope.a()
        param_scope.b(2)
    assert dict(used) == {"a": 1}


def test_nested_records_each_see_their_block() -> None:
    with param_scope(a=1, b=2), param_scope.record() as outer:
        param_scope.a()
        with param_scope.record() as inner:
            param_scope.b()
    assert dict(outer) == {"a": 1, "b": 2}
    assert dict(inner) == {"b": 2}


def test_records_are_per_thread_and_per_task() -> None:
    other_thread = threading.Thread(target=lambda: param_scope.seen_elsewhere(0))

    async def other_task() -> None:
        param_scope.task_read(0)

    async def main() -> None:
        with param_scope.record() as used:
            param_scope.here(0)
            await asyncio.gather(asyncio.create_task(asyncio.sleep(0)))
        with param_scope.record() as mine:
            param_scope.mine(0)
            task = asyncio.create_task(other_task())  # a copy of this context: recorded too
            await task
        other_thread.start()
        other_thread.join()
        assert dict(used) == {"here": 0}
        assert dict(mine) == {"mine": 0, "task_read": 0}

    asyncio.run(main())
