"""MedianRule: which runs it stops, from when on, and its argument errors."""

from __future__ import annotations

import math
import pickle
import threading

import pytest

from assay._follow import Pruner
from assay._median import MedianRule


def _finished(rule: MedianRule, curves: dict[str, list[float]]) -> None:
    for run_id, values in curves.items():
        for step, value in enumerate(values):
            rule.report(run_id, rule.metric, value, step)
        rule.finished(run_id)


def test_a_run_worse_than_the_median_of_the_others_is_pruned() -> None:
    rule = MedianRule("loss", n_startup_runs=3)
    _finished(rule, {"a": [1.0, 0.8, 0.6], "b": [1.0, 0.5, 0.4], "c": [1.0, 0.9, 0.2]})
    rule.report("good", "loss", 0.7, 1)  # the median at step 1 is 0.8: better, kept
    assert rule.should_prune("good") is False
    rule.report("bad", "loss", 0.85, 1)
    assert rule.should_prune("bad") is True
    assert isinstance(rule, Pruner)


def test_the_others_are_compared_by_their_best_value_so_far() -> None:
    # b and c got worse at step 1: their best up to step 1 is still their step-0 value.
    rule = MedianRule("loss", n_startup_runs=2)
    _finished(rule, {"b": [0.2, 0.9], "c": [0.4, 1.0]})
    rule.report("r", "loss", 0.5, 1)  # worse than median(0.2, 0.4) = 0.3, though < 0.95
    assert rule.should_prune("r") is True


def test_the_run_is_judged_by_its_own_best_value_so_far() -> None:
    rule = MedianRule("loss", n_startup_runs=2)
    _finished(rule, {"a": [0.5, 0.5], "b": [0.5, 0.5]})
    rule.report("r", "loss", 0.1, 0)
    rule.report("r", "loss", 0.9, 1)  # a bad step, but its best so far (0.1) beats 0.5
    assert rule.should_prune("r") is False


def test_maximize_prunes_the_runs_below_the_median() -> None:
    rule = MedianRule("acc", direction="maximize", n_startup_runs=2)
    _finished(rule, {"a": [0.6], "b": [0.8]})
    rule.report("low", "acc", 0.65, 0)
    rule.report("high", "acc", 0.75, 0)
    assert (rule.should_prune("low"), rule.should_prune("high")) == (True, False)


def test_nothing_is_pruned_before_enough_runs_finished() -> None:
    rule = MedianRule("loss", n_startup_runs=3)
    _finished(rule, {"a": [0.1], "b": [0.1]})
    rule.report("r", "loss", 5.0, 0)
    assert rule.should_prune("r") is False
    _finished(rule, {"c": [0.1]})
    assert rule.should_prune("r") is True  # the third end changes the answer


def test_nothing_is_pruned_during_the_warmup_steps() -> None:
    rule = MedianRule("loss", n_startup_runs=1, n_warmup_steps=2)
    _finished(rule, {"a": [0.1, 0.1, 0.1]})
    rule.report("r", "loss", 5.0, 0)
    rule.report("r", "loss", 5.0, 1)
    assert rule.should_prune("r") is False
    rule.report("r", "loss", 5.0, 2)  # step n_warmup_steps is the first that may be pruned
    assert rule.should_prune("r") is True


def test_a_run_alone_at_its_step_is_kept() -> None:
    rule = MedianRule("loss", n_startup_runs=1)
    _finished(rule, {"a": [0.1]})
    rule.report("r", "loss", 5.0, 7)  # nobody else reported step 7
    assert rule.should_prune("r") is False


def test_running_runs_count_as_others_too() -> None:
    rule = MedianRule("loss", n_startup_runs=0)
    rule.report("a", "loss", 0.1, 0)
    rule.report("b", "loss", 0.2, 0)
    rule.report("r", "loss", 0.3, 0)
    assert rule.should_prune("r") is True  # with no startup runs, the rule decides at once


def test_nan_values() -> None:
    rule = MedianRule("loss", n_startup_runs=2)
    _finished(rule, {"a": [math.nan, 0.5], "b": [0.4, 0.6]})
    rule.report("diverged", "loss", math.nan, 0)
    assert rule.should_prune("diverged") is True
    # a's NaN at step 0 is left out of the median: b's 0.4 is the median at step 0
    rule.report("r", "loss", 0.45, 0)
    assert rule.should_prune("r") is True
    # a NaN after good values does not spoil the best so far
    rule.report("s", "loss", 0.3, 0)
    rule.report("s", "loss", math.nan, 1)
    assert rule.should_prune("s") is False


def test_a_pruned_run_stays_pruned_and_other_metrics_are_ignored() -> None:
    rule = MedianRule("loss", n_startup_runs=1)
    _finished(rule, {"a": [0.1, 0.1]})
    rule.report("r", "loss", 0.9, 0)
    rule.report("r", "acc", 0.0, 1)  # not the rule's metric: its step 1 does not count
    assert rule.should_prune("r") is True
    rule.report("r", "loss", 0.0, 1)  # better than everyone now, too late
    assert rule.should_prune("r") is True
    assert rule.should_prune("unknown") is False


def test_values_without_step_count_as_the_next_step_and_repeats_are_ignored() -> None:
    rule = MedianRule("loss", n_startup_runs=1)
    _finished(rule, {"a": [0.5, 0.1]})
    rule.report("r", "loss", 0.4, None)  # step 0
    rule.report("r", "loss", 0.3, None)  # step 1: worse than a's best 0.1 there
    assert rule.should_prune("r") is True
    again = MedianRule("loss", n_startup_runs=1)
    _finished(again, {"a": [0.5]})
    again.report("r", "loss", 0.1, 0)
    again.report("r", "loss", 0.9, 0)  # the same step again: the first value holds
    assert again.should_prune("r") is False


def test_steps_out_of_order() -> None:
    rule = MedianRule("loss", n_startup_runs=1)
    _finished(rule, {"a": [0.5, 0.5, 0.5]})
    rule.report("r", "loss", 0.9, 2)
    rule.report("r", "loss", 0.1, 0)  # arrives late: its best up to step 2 is 0.1
    assert rule.should_prune("r") is False


def test_reports_from_many_threads() -> None:
    rule = MedianRule("loss", n_startup_runs=0)

    def run(index: int) -> None:
        for step in range(200):
            rule.report(f"r{index}", "loss", float(index), step)
            rule.should_prune("probe")  # decisions asked for while others report

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # no report lost: at step 199 all eight runs are there; those above the median go
    assert [rule.should_prune(f"r{i}") for i in range(8)] == [False] * 4 + [True] * 4


def test_a_rule_pickles_with_what_it_heard() -> None:
    rule = MedianRule("loss", n_startup_runs=1)
    _finished(rule, {"a": [0.1]})
    copy = pickle.loads(pickle.dumps(rule))
    copy.report("r", "loss", 0.9, 0)
    assert copy.should_prune("r") is True
    assert repr(copy) == (
        "MedianRule(metric='loss', direction='minimize', n_startup_runs=1, n_warmup_steps=0)"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metric": ""}, ValueError, r"metric=''"),
        ({"metric": 3}, TypeError, r"metric=3"),
        ({"direction": "min"}, ValueError, r"direction='min'.*'minimize' or 'maximize'"),
        ({"n_startup_runs": -1}, ValueError, r"n_startup_runs=-1.*>= 0"),
        ({"n_startup_runs": 2.0}, TypeError, r"n_startup_runs=2.0.*an int"),
        ({"n_warmup_steps": True}, TypeError, r"n_warmup_steps=True"),
        ({"n_warmup_steps": -3}, ValueError, r"n_warmup_steps=-3"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, object], error: type, message: str) -> None:
    arguments: dict[str, object] = {"metric": "loss", **kwargs}
    with pytest.raises(error, match=message):
        MedianRule(**arguments)  # type: ignore[arg-type]
