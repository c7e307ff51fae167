"""Adaptive search: trials asked from Optuna, run as the experiment's runs, resumable and cached."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from assay import Experiment, Results, choice, loguniform, randint, uniform  # noqa: E402
from assay._cli import main  # noqa: E402
from assay._search import search  # noqa: E402
from assay._study import JOURNAL  # noqa: E402
from tests.kit.modules import ops_module  # noqa: E402

OPS = """
import os
import time
from pathlib import Path

from assay_ops import operation

LOG = Path(os.environ["SEARCH_LOG"])


@operation
def bowl(params, capture):
    x, y = params["x"], params["y"]
    if params.get("block") and len(LOG.read_text().splitlines()) >= params["block"]:
        gate = LOG.with_name("gate")
        if not gate.exists():  # the driver is killed while this run is going
            LOG.with_name("blocked").write_text(str(os.getpid()))
            while not gate.exists():
                time.sleep(0.05)
    value = (x - 1.0) ** 2 + (y + 0.5) ** 2
    if params.get("fail_above") is not None and x > params["fail_above"]:
        raise ValueError(f"x = {x} is too large")
    if not params.get("silent"):
        capture.metric("loss", value)
    with LOG.open("a") as log:  # one line per computed run: what "computed once" counts
        log.write(f"{params['x']!r} {params['y']!r}\\n")
"""


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write the operations' module; return its name. Computed runs append to ``log``."""
    (tmp_path / "log").write_text("")
    monkeypatch.setenv("SEARCH_LOG", str(tmp_path / "log"))
    with ops_module(tmp_path, monkeypatch, "search_ops", OPS) as name:
        yield name


def _computed(tmp_path: Path) -> list[str]:
    return (tmp_path / "log").read_text().splitlines()


def _space(n: int, **extra: Any) -> Any:
    return search(n, metric="loss", x=uniform(-2.0, 2.0), y=uniform(-2.0, 2.0), **extra)


def _experiment(ops: str, folder: Path, space: Any, **kwargs: Any) -> Experiment:
    return Experiment("bowl", f"{ops}:bowl", space, folder=folder, progress=False, **kwargs)


def _trials(folder: Path) -> list[Any]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def test_an_inline_search_runs_n_trials_and_knows_its_best(ops: str, tmp_path: Path) -> None:
    results = _experiment(ops, tmp_path / "f", _space(12, parallel=3)).run()
    assert results.counts() == {"success": 12}
    trials = _trials(tmp_path / "f")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 12
    # each trial was told its run's last value of the metric
    by_point = {(row.params["x"], row.params["y"]): row.metrics["loss"] for row in results}
    assert {(t.params["x"], t.params["y"]): t.value for t in trials} == by_point
    best = results.best()
    assert best.metrics["loss"] == min(by_point.values())
    assert Results.load(tmp_path / "f").best().run_id == best.run_id  # from the folder alone
    assert len(_computed(tmp_path)) == 12


def test_the_sampler_learns_tpe_beats_its_own_random_start(ops: str, tmp_path: Path) -> None:
    # 10 random start-up trials, then 30 guided ones: the guided ones find a lower value
    results = _experiment(ops, tmp_path / "f", _space(40, parallel=1, seed=3)).run()
    values = [row.metrics["loss"] for row in results]
    assert min(values[10:]) < min(values[:10])


def test_a_search_is_the_same_inline_and_on_a_process_pool(ops: str, tmp_path: Path) -> None:
    inline = _experiment(ops, tmp_path / "a", _space(8, parallel=2)).run()
    pooled = _experiment(
        ops,
        tmp_path / "b",
        _space(8, parallel=2),
        backend={"backend": "ProcessPool", "max_jobs": 2},
    ).run()
    assert [row.params for row in pooled] == [row.params for row in inline]
    assert [row.metrics for row in pooled] == [row.metrics for row in inline]


def test_another_seed_gives_another_search(ops: str, tmp_path: Path) -> None:
    one = _experiment(ops, tmp_path / "a", _space(4), seed=1).run()
    two = _experiment(ops, tmp_path / "b", _space(4), seed=2).run()
    assert [row.params for row in one] != [row.params for row in two]


def test_rerunning_a_finished_search_computes_nothing(ops: str, tmp_path: Path) -> None:
    experiment = _experiment(ops, tmp_path / "f", _space(6, parallel=2))
    first = experiment.run()
    again = _experiment(ops, tmp_path / "f", _space(6, parallel=2))
    second = again.run()
    assert len(_computed(tmp_path)) == 6
    assert again.last_summary is not None
    assert again.last_summary.executed == 0
    assert second.best().run_id == first.best().run_id
    assert len(_trials(tmp_path / "f")) == 6


def test_raising_n_continues_the_same_study(ops: str, tmp_path: Path) -> None:
    _experiment(ops, tmp_path / "f", _space(5)).run()
    results = _experiment(ops, tmp_path / "f", _space(9)).run()
    assert len(results) == 9
    assert len(_computed(tmp_path)) == 9
    assert [t.number for t in _trials(tmp_path / "f")] == list(range(9))


def test_failed_runs_and_runs_without_the_metric_are_failed_trials(
    ops: str, tmp_path: Path
) -> None:
    space = search(6, metric="loss", x=uniform(-2.0, 2.0), y=uniform(-2.0, 2.0), fail_above=0.0)
    results = _experiment(ops, tmp_path / "f", space).run()
    trials = _trials(tmp_path / "f")
    failed = {t.params["x"] for t in trials if t.state.name == "FAIL"}
    assert failed == {row.params["x"] for row in results if row.status == "failed"} != set()
    assert all(t.user_attrs["failed"] == "run failed" for t in trials if t.state.name == "FAIL")

    silent = search(2, metric="loss", x=uniform(-2.0, 2.0), y=uniform(-2.0, 2.0), silent=True)
    _experiment(ops, tmp_path / "g", silent).run()
    assert [t.user_attrs["failed"] for t in _trials(tmp_path / "g")] == [
        "run recorded no metric 'loss'"
    ] * 2


def test_choices_of_lists_fixed_values_and_integers_reach_the_run(ops: str, tmp_path: Path) -> None:
    space = search(
        5, metric="loss", x=randint(-2, 3), y=choice([[1, 2], {"a": 0.5}]),
        layers=2, lr=loguniform(1e-4, 1e-1),
    )  # fmt: skip
    # the operation computes (y + 0.5) ** 2: lists and dicts fail as runs, which is fine here
    results = _experiment(ops, tmp_path / "f", space).run()
    for row in results:
        assert type(row.params["x"]) is int
        assert -2 <= row.params["x"] <= 2
        assert row.params["y"] in ([1, 2], {"a": 0.5})
        assert row.params["layers"] == 2
        assert 1e-4 <= row.params["lr"] <= 1e-1


def test_a_killed_search_resumes_with_no_trial_lost_or_computed_twice(
    ops: str, tmp_path: Path
) -> None:
    folder = tmp_path / "f"
    driver = textwrap.dedent(f"""
        from assay import Experiment, uniform
        from assay._search import search
        space = search(8, metric="loss", x=uniform(-2.0, 2.0), y=uniform(-2.0, 2.0), block=5)
        Experiment("bowl", "{ops}:bowl", space, folder={str(folder)!r}, progress=False).run()
    """)
    process = subprocess.Popen([sys.executable, "-c", driver])
    blocked = tmp_path / "blocked"
    deadline = time.monotonic() + 120
    while not blocked.exists():
        assert process.poll() is None, "the driver ended before it was killed"
        assert time.monotonic() < deadline, "the sixth run never started"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL  # the kill landed, mid-run
    assert len(_computed(tmp_path)) == 5
    states = [t.state.name for t in _trials(folder)]
    assert states == ["COMPLETE"] * 5 + ["RUNNING"]

    (tmp_path / "gate").write_text("")
    space = search(8, metric="loss", x=uniform(-2.0, 2.0), y=uniform(-2.0, 2.0), block=5)
    results = _experiment(ops, folder, space).run()
    trials = _trials(folder)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 8
    assert [t.number for t in trials] == list(range(8))
    computed = _computed(tmp_path)
    assert len(computed) == 8
    assert len(set(computed)) == 8
    assert results.counts() == {"success": 8}


def test_the_command_line_runs_a_search_and_names_its_best(
    ops: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", f"{ops}:bowl", "--search", "6", "--metric", "loss", "--minimize",
            "--space", "x=uniform(-2,2)", "--space", "y=uniform(-2,2)",
            "--folder", str(tmp_path / "f")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    best = Results.load(tmp_path / "f").best()
    assert f"best loss = {best.metrics['loss']:.6g} (run {best.run_id})" in err
    assert main(argv) == 0
    assert "all from cache" in capsys.readouterr().err
    assert len(_computed(tmp_path)) == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metric", "loss"], "--metric: only with --search N"),
        (["--search", "3", "--space", "x=uniform(0,1)"], "--search needs --metric NAME"),
        (["--search", "3", "--metric", "m", "--space", "x=gauss(0,1)"], "x=gauss(0,1)"),
        (["--search", "0", "--metric", "m", "--space", "x=uniform(0,1)"], "n = 0"),
        (["--search", "3", "--metric", "m", "--grid", "x=1,2"], "--grid with --search"),
    ],
)
def test_the_command_line_refuses_bad_search_options(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "assay._demo:estimate_pi", *argv, "--folder", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "search(): n = 0; expected an int >= 1"),
        ({"metric": ""}, "search(): metric = ''"),
        ({"direction": "down"}, "direction = 'down'"),
        ({"sampler": "grid"}, "sampler = 'grid'"),
        ({"pruner": "patient"}, "pruner = 'patient'"),
        ({"parallel": 0}, "parallel = 0"),
        ({"x": uniform(1.0, 0.0)}, "parameter 'x'"),
    ],
)
def test_bad_search_arguments_are_refused_naming_them(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"n": 3, "metric": "loss", "x": uniform(0.0, 1.0), **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        search(**arguments)


def test_a_search_has_no_points_before_it_runs_and_takes_one_replicate(tmp_path: Path) -> None:
    space = search(3, metric="loss", x=uniform(0.0, 1.0))
    with pytest.raises(TypeError, match="no points before it runs"):
        space.expand(0)
    with pytest.raises(ValueError, match="replicates = 2; a search runs each trial once"):
        Experiment("s", "assay._demo:estimate_pi", space, replicates=2, folder=tmp_path)


def test_without_optuna_a_search_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed
    space = search(3, metric="estimate", n_samples=randint(10, 100))
    experiment = Experiment("s", "assay._demo:estimate_pi", space, folder=tmp_path, progress=False)
    with pytest.raises(ImportError) as error:
        experiment.run()
    assert "pip install 'assay[search]'" in str(error.value)
    assert not (tmp_path / "index.sqlite").exists()  # refused before the folder was written


def test_best_of_a_plain_sweep_needs_its_metric(tmp_path: Path) -> None:
    from assay import grid

    results = Experiment(
        "pi", "assay._demo:estimate_pi", grid(n_samples=[10, 1000]), folder=tmp_path,
        progress=False,
    ).run()  # fmt: skip
    with pytest.raises(ValueError, match="not a search's; pass the metric"):
        results.best()
    assert results.best("abs_error") in results.rows
    assert results.best("abs_error", "maximize").metrics["abs_error"] == max(
        row.metrics["abs_error"] for row in results
    )
    with pytest.raises(ValueError, match="no successful run recorded metric 'nope'"):
        results.best("nope")


def test_the_journal_is_readable_by_optuna_with_the_searchs_description(
    ops: str, tmp_path: Path
) -> None:
    _experiment(ops, tmp_path / "f", _space(3)).run()
    from assay._index import ResultsIndex

    with ResultsIndex(tmp_path / "f", read_only=True) as index:
        described = index.get_meta("search")
    assert described["metric"] == "loss"
    assert described["direction"] == "minimize"
    assert json.loads(json.dumps(described)) == described
    assert len(_trials(tmp_path / "f")) == 3


def test_assay_results_marks_the_best_trial(
    ops: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _experiment(ops, tmp_path / "f", _space(5)).run()
    capsys.readouterr()
    assert main(["results", str(tmp_path / "f"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["run_id"] for row in rows if row["best"] is True] == [results.best().run_id]
    assert sum(row["best"] is False for row in rows) == 4
    assert main(["results", str(tmp_path / "f")]) == 0
    table = capsys.readouterr().out
    assert "best" in table
    assert table.count("*") == 1


def test_the_trials_plot_shows_each_value_and_the_best_so_far(
    ops: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    results = _experiment(ops, tmp_path / "f", _space(6, parallel=1)).run()
    figure = results.plot_trials()
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    values = [row.metrics["loss"] for row in results]
    assert list(lines["loss"].get_ydata()) == values
    running = [min(values[: i + 1]) for i in range(len(values))]
    assert list(lines["best so far"].get_ydata()) == running
    assert list(lines["best"].get_ydata()) == [min(values)]
    assert axes.get_xlabel() == "trial"
    assert main(["plot", str(tmp_path / "f"), "loss", "--trials"]) == 0
    assert (tmp_path / "f" / "plots" / "loss_by_trial.png").stat().st_size > 0
    assert main(["plot", str(tmp_path / "f"), "loss", "--trials", "--hue", "x"]) == 1
    assert "--trials: the x axis is the trial number" in capsys.readouterr().err


def test_a_trial_left_half_asked_by_a_killed_driver_is_completed_and_run(
    ops: str, tmp_path: Path
) -> None:
    folder = tmp_path / "f"
    _experiment(ops, folder, _space(3)).run()
    # what a driver killed in the middle of an ask leaves: a trial with one parameter of two
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    half = study.ask()
    half.suggest_float("x", -2.0, 2.0)
    results = _experiment(ops, folder, _space(5)).run()
    trials = _trials(folder)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    assert trials[3].params["x"] == half.params["x"]  # what was asked is kept
    assert set(trials[3].params) == {"x", "y"}
    assert len(results) == 5
    assert len(_computed(tmp_path)) == 5
