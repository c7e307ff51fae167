"""A run records the parameters it read through param_scope: name -> value read."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from assay_ops import RunRecord, operation
from assay_scope import auto_param, param_scope


@auto_param("model")
def build(width: int = 3, depth: int = 2) -> int:
    return width * depth


@operation
def train(params: dict[str, Any], capture: Any) -> None:
    lr = param_scope.lr(0.01)  # one of the run's params
    epochs = param_scope.epochs | 5  # no scope sets it: the default is what the run used
    capture.metric("size", build() * epochs * lr)
    _ = params["unread_by_scope"]  # read from the dict: not a param_scope read


def test_own_params_scope_values_defaults_and_auto_param_reads_are_recorded() -> None:
    with param_scope(**{"model.width": 7}):  # set around the run, as an experiment's scope
        record = train.run(params={"lr": 0.5, "unread_by_scope": 1, "never_read": 2})
    assert record.params_read == {"lr": 0.5, "epochs": 5, "model.width": 7, "model.depth": 2}
    back = RunRecord.from_json(record.to_json())
    assert back.params_read == record.params_read


def test_a_failed_run_keeps_what_it_read_before_failing() -> None:
    @operation
    def fails() -> None:
        _ = param_scope.alpha | 1.5
        raise RuntimeError("after the read")

    record = fails.run()
    assert record.status == "failed"
    assert record.params_read == {"alpha": 1.5}


def test_reads_outside_the_run_are_not_recorded() -> None:
    @operation
    def reads_nothing() -> None: ...

    with param_scope(lr=0.1):
        _ = param_scope.lr | 0.0
        record = reads_nothing.run(params={"lr": 0.2})
    assert record.params_read == {}


def test_records_written_before_the_field_existed_load_with_no_reads() -> None:
    record = train.run(params={"lr": 0.5, "unread_by_scope": 1})
    data = json.loads(record.to_json())
    del data["params_read"]
    old = RunRecord.from_dict(data)
    assert old.params_read == {}
    assert old.metrics == record.metrics


def test_values_a_record_cannot_hold_are_kept_as_their_repr_and_the_run_succeeds() -> None:
    class Model:
        def __repr__(self) -> str:
            return "Model(layers=3)"

    @operation
    def reads_objects() -> None:
        _ = param_scope.model | None
        _ = param_scope.weights | None

    with param_scope(model=Model(), weights=np.arange(3)):
        record = reads_objects.run()
    assert record.status == "success"
    back = RunRecord.from_json(record.to_json(indent=None))
    assert back.params_read["model"] == "Model(layers=3)"
    assert np.array_equal(back.params_read["weights"], np.arange(3))  # arrays stay arrays
