"""Experiment sweeps end to end, inline: runs, resume, retries, code changes, Ctrl-C."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import assay
from assay import Experiment, Results, grid, loguniform, operation, random
from assay._identity import CodeChangedError, FolderConflictError

OPS_V1 = """
import math
from pathlib import Path

from assay_ops import operation


def _log(context, params, seeds):
    # one file per invocation, so tests can count how often the operation really ran
    folder = Path(context["log_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    name = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    (folder / f"{name}-{seeds.replicate}-{len(list(folder.iterdir()))}").touch()


@operation
def square(context, params, seeds, capture):
    _log(context, params, seeds)
    capture.metric("value", params["x"] ** 2)
    capture.metric("noise", float(seeds.numpy().random()))


@operation
def flaky(context, params, seeds, capture):
    _log(context, params, seeds)
    if params["x"] < 0 and Path(context["log_dir"], "..", "broken").exists():
        raise ValueError(f"x = {params['x']} is negative")
    capture.metric("value", abs(params["x"]))


@operation
def interrupted(context, params, seeds, capture):
    if params["x"] == context["stop_at"] and Path(context["log_dir"], "..", "stop").exists():
        raise KeyboardInterrupt
    _log(context, params, seeds)
    capture.metric("value", params["x"])


class _SwallowedInterrupt:
    def __del__(self):
        # Ctrl-C arriving where Python can only print the KeyboardInterrupt (here a __del__,
        # in a real sweep an at-fork callback while a pool starts a worker)
        import signal

        signal.raise_signal(signal.SIGINT)


@operation
def swallowed(params, capture):
    if params["x"] == 3:
        _SwallowedInterrupt()
    capture.metric("value", params["x"])


@operation
def scoped(params, capture):
    from assay_scope import param_scope

    # deep code reads scope values without plumbing: -D values and the run's own params
    capture.metric("width", param_scope.model.width | 0)
    capture.metric("x_from_scope", param_scope.x | -1)


@operation
def with_artifact(params, capture):
    capture.artifact("numbers.txt", f"x={params['x']}".encode())
    capture.metric("value", params["x"])
"""


@pytest.fixture
def ops(write_module: Callable[..., Any]) -> Callable[[str], Any]:
    """Write the test operations to an importable module; the returned function rewrites it."""

    def write(text: str = OPS_V1) -> Any:
        return write_module(text, "assay_test_ops")

    write()
    return write


def _calls(tmp_path: Path) -> int:
    folder = tmp_path / "calls"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def _experiment(tmp_path: Path, op: Any, params: Any, **kwargs: Any) -> Experiment:
    kwargs.setdefault("replicates", 2)
    kwargs.setdefault("folder", tmp_path / "exp")
    context = {"log_dir": str(tmp_path / "calls"), **kwargs.pop("context", {})}
    return Experiment("test", op, params, context=context, progress=False, **kwargs)


def test_a_sweep_runs_every_params_and_replicate(tmp_path: Path, ops: Any) -> None:
    module = ops()
    results = _experiment(tmp_path, module.square, grid(x=[1, 2, 3])).run()
    assert results.counts() == {"success": 6}
    assert _calls(tmp_path) == 6
    for row in results:
        assert row.metrics["value"] == row.params["x"] ** 2
        assert row.duration is not None
        assert row.code_hash == module.square.code_hash
    assert sorted((r.params["x"], r.replicate) for r in results) == [
        (x, r) for x in (1, 2, 3) for r in (0, 1)
    ]


def test_replicates_get_independent_reproducible_seeds(tmp_path: Path, ops: Any) -> None:
    module = ops()
    first = _experiment(tmp_path, module.square, grid(x=[1, 2]), replicates=3).run()
    again = _experiment(
        tmp_path, module.square, grid(x=[1, 2]), replicates=3, folder=tmp_path / "b"
    )
    second = again.run()
    noise = [row.metrics["noise"] for row in first]
    assert len(set(noise)) == 6  # every (params, replicate) has its own stream
    assert noise == [row.metrics["noise"] for row in second]  # same seed, same streams
    other = _experiment(
        tmp_path, module.square, grid(x=[1, 2]), replicates=3, seed=1, folder=tmp_path / "c"
    ).run()
    assert noise != [row.metrics["noise"] for row in other]


def test_running_again_resumes_and_only_runs_new_points(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    experiment = _experiment(tmp_path, module.square, grid(x=[1, 2]))
    results = experiment.run()
    assert _calls(tmp_path) == 4
    assert experiment.last_summary is not None
    assert experiment.last_summary.skipped == 4
    assert experiment.last_summary.executed == 0
    assert len(results) == 4
    bigger = _experiment(tmp_path, module.square, grid(x=[1, 2, 3]))
    assert len(bigger.run()) == 6
    assert _calls(tmp_path) == 6
    assert bigger.last_summary is not None
    assert bigger.last_summary.executed == 2


def test_a_lost_index_is_rebuilt_from_the_cache(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    for path in (tmp_path / "exp").glob("index.sqlite*"):
        path.unlink()
    experiment = _experiment(tmp_path, module.square, grid(x=[1, 2]))
    results = experiment.run()
    assert results.counts() == {"success": 4}
    assert _calls(tmp_path) == 4  # nothing ran again: the records came from the cache
    assert experiment.last_summary is not None
    assert experiment.last_summary.cached == 4


def test_failed_runs_are_kept_until_retry_failed(tmp_path: Path, ops: Any) -> None:
    module = ops()
    (tmp_path / "broken").touch()
    results = _experiment(tmp_path, module.flaky, grid(x=[-1, 1])).run()
    assert results.counts() == {"failed": 2, "success": 2}
    failed = results.failed()
    assert {row.params["x"] for row in failed} == {-1}
    assert all(row.error == "ValueError: x = -1 is negative" for row in failed)
    records = failed.records()
    assert all(r.status == "failed" and "is negative" in r.error.traceback for r in records)

    _experiment(tmp_path, module.flaky, grid(x=[-1, 1])).run()
    assert _calls(tmp_path) == 4  # failed runs are not retried by default

    (tmp_path / "broken").unlink()
    retried = _experiment(tmp_path, module.flaky, grid(x=[-1, 1])).run(retry_failed=True)
    assert retried.counts() == {"success": 4}
    assert _calls(tmp_path) == 6  # only the two failed runs ran again


def test_records_are_full_run_records(tmp_path: Path, ops: Any) -> None:
    module = ops()
    results = _experiment(tmp_path, module.square, grid(x=[3]), replicates=1).run()
    (record,) = results.records()
    (row,) = results.rows
    assert record.run_id == row.run_id
    assert record.params == {"x": 3}
    assert record.metric("value") == 9
    assert record.ref == module.square.ref
    assert record.provenance


def test_artifacts_land_in_the_run_directory(tmp_path: Path, ops: Any) -> None:
    module = ops()
    results = _experiment(tmp_path, module.with_artifact, grid(x=[5]), replicates=1).run()
    (row,) = results.rows
    path = tmp_path / "exp" / "runs" / row.run_id / "artifacts" / "numbers.txt"
    assert path.read_bytes() == b"x=5"


def test_random_search_is_reproducible_from_the_root_seed(tmp_path: Path, ops: Any) -> None:
    module = ops()
    space = random(5, x=loguniform(1e-3, 1.0))
    a = _experiment(tmp_path, module.square, space, replicates=1, seed=3).run()
    b = _experiment(
        tmp_path, module.square, space, replicates=1, seed=3, folder=tmp_path / "b"
    ).run()
    assert [r.params for r in a] == [r.params for r in b]
    assert len({r.params["x"] for r in a}) == 5


def test_scope_values_reach_deep_code(tmp_path: Path, ops: Any) -> None:
    module = ops()
    results = _experiment(
        tmp_path, module.scoped, grid(x=[1, 2]), replicates=1, scope={"model.width": 64}
    ).run()
    assert [row.metrics for row in results] == [
        {"width": 64, "x_from_scope": 1},
        {"width": 64, "x_from_scope": 2},
    ]
    with pytest.raises(FolderConflictError, match="scope"):
        _experiment(tmp_path, module.scoped, grid(x=[1]), scope={"model.width": 8}).run()


def test_cli_defines_reach_the_operation(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from assay._cli import main

    module = ops()
    folder = str(tmp_path / "cli")
    ref = module.scoped.ref
    assert main(["run", ref, "--grid", "x=3", "-D", "model.width=16", "--folder", folder]) == 0
    assert main(["results", folder, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["width"] == 16
    assert row["x_from_scope"] == 3


# ---------------------------------------------------------------- code changes


def test_changed_code_is_detected_and_needs_a_decision(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    # a comment does not change the code hash
    module = ops(OPS_V1.replace("def square(", "# a comment\ndef square("))
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    assert _calls(tmp_path) == 4

    module = ops(OPS_V1.replace('params["x"] ** 2', 'params["x"] ** 3'))
    with pytest.raises(CodeChangedError, match=r"changed since 4 runs.*on_code_change='rerun'"):
        _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    assert _calls(tmp_path) == 4  # nothing ran

    kept = _experiment(tmp_path, module.square, grid(x=[1, 2])).run(on_code_change="keep")
    assert [r.metrics["value"] for r in kept] == [1, 1, 4, 4]
    assert _calls(tmp_path) == 4

    rerun = _experiment(tmp_path, module.square, grid(x=[1, 2])).run(on_code_change="rerun")
    assert [r.metrics["value"] for r in rerun] == [1, 1, 8, 8]
    assert {r.code_hash for r in rerun} == {module.square.code_hash}
    assert _calls(tmp_path) == 8


def test_keep_is_remembered_for_the_code_it_was_given_for(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run()
    cubed = OPS_V1.replace('params["x"] ** 2', 'params["x"] ** 3')
    module = ops(cubed)
    _experiment(tmp_path, module.square, grid(x=[1, 2])).run(on_code_change="keep")
    # decided once for this code: later runs of the same code neither ask nor rerun
    again = _experiment(tmp_path, module.square, grid(x=[1, 2, 3])).run()
    assert [r.metrics["value"] for r in again] == [1, 1, 4, 4, 27, 27]
    assert _calls(tmp_path) == 6
    # code that changes again asks again, about every run of other code
    module = ops(cubed.replace('params["x"] ** 3', 'params["x"] ** 4'))
    with pytest.raises(CodeChangedError, match="changed since 6 runs were recorded"):
        _experiment(tmp_path, module.square, grid(x=[1, 2, 3])).run()


def test_the_command_names_its_own_options_when_code_changed(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from assay._cli import main

    module = ops()
    folder = str(tmp_path / "cli")
    assert main(["run", module.scoped.ref, "--grid", "x=3", "--folder", folder]) == 0
    module = ops(OPS_V1.replace("param_scope.x | -1", "param_scope.x | -2"))
    capsys.readouterr()
    assert main(["run", module.scoped.ref, "--grid", "x=3", "--folder", folder]) == 1
    error = capsys.readouterr().err
    assert "changed since 1 run was recorded" in error
    assert "--on-code-change rerun" in error
    assert "on_code_change=" not in error
    assert len(error.strip().splitlines()) == 1
    assert main(["run", module.scoped.ref, "--grid", "x=3", "--folder", folder,
                 "--on-code-change", "rerun"]) == 0  # fmt: skip


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_keeps_completed_runs_and_a_rerun_resumes(
    tmp_path: Path, ops: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # x = 8 and 9 completed (their cache entries are written) in the chunk that Ctrl-C stopped:
    # the index and the message count them as kept, not as cancelled
    monkeypatch.setattr("assay._sweep_chunks._MIN_CHUNK", 8)
    module = ops()
    (tmp_path / "stop").touch()
    space = grid(x=list(range(20)))
    with pytest.raises(KeyboardInterrupt):
        _experiment(
            tmp_path, module.interrupted, space, replicates=1, context={"stop_at": 10}
        ).run()
    assert "10 runs completed and kept, 10 cancelled" in capsys.readouterr().err
    assert Results.load(tmp_path / "exp").counts() == {"success": 10, "cancelled": 10}

    (tmp_path / "stop").unlink()
    experiment = _experiment(
        tmp_path, module.interrupted, space, replicates=1, context={"stop_at": 10}
    )
    assert experiment.run().counts() == {"success": 20}
    assert experiment.last_summary is not None
    assert (experiment.last_summary.executed, experiment.last_summary.cached) == (10, 0)
    assert _calls(tmp_path) == 20  # each run ran exactly once


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # by design
def test_a_ctrl_c_whose_exception_is_swallowed_still_stops_the_command(
    tmp_path: Path, ops: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assay._cli import main

    monkeypatch.setattr("assay._sweep_chunks._MIN_CHUNK", 8)
    module = ops()
    folder = str(tmp_path / "cli")
    args = ["run", module.swallowed.ref, "--grid", f"x={','.join(map(str, range(20)))}"]
    assert main([*args, "--folder", folder]) == 130
    assert "interrupted" in capsys.readouterr().err
    # the chunk running at the time completes; the sweep stops before the next one
    assert Results.load(folder).counts() == {"success": 8, "cancelled": 12}


def test_runs_that_failed_before_their_operation_started_have_failed_records(
    tmp_path: Path, ops: Any
) -> None:
    module = ops()
    experiment = _experiment(tmp_path, module.square, grid(x=[1, 2]))
    # the workers cannot import the operation any more (a module missing on a cluster node)
    Path(module.__file__).unlink()
    sys.modules.pop(module.__name__)
    importlib.invalidate_caches()
    results = experiment.run()
    assert results.counts() == {"failed": 4}
    assert all("ModuleNotFoundError" in (row.error or "") for row in results)
    records = results.records()  # no run got as far as its operation: a failed record each
    assert [(r.run_id, r.status) for r in records] == [(row.run_id, "failed") for row in results]
    assert all(
        r.error is not None and r.error.type.endswith("ModuleNotFoundError") for r in records
    )


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", ["LocalProcess", "Slurm", "Auto"])
def test_an_operation_of_the_running_script_is_refused_for_job_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # A job starts a new interpreter whose __main__ is not the script: it cannot import
    # "__main__:name". Said before anything runs, with what to do.
    def square(params: dict[str, int], capture: Any) -> None:
        capture.metric("value", params["x"] ** 2)

    square.__module__, square.__qualname__ = "__main__", "square_from_script"
    op = operation(square)
    monkeypatch.setattr(sys.modules["__main__"], "square_from_script", op, raising=False)
    with pytest.raises(ValueError, match=r"defined in the script being run.*own module"):
        _experiment(tmp_path, op, grid(x=[1]), backend={"backend": backend})
    assert not (tmp_path / "exp").exists()
    _experiment(tmp_path, op, grid(x=[1]), backend={"backend": "ProcessPool"})  # forks: fine


def test_a_folder_of_another_experiment_is_refused(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1])).run()
    with pytest.raises(FolderConflictError, match=r"belongs to experiment 'test' with operation"):
        _experiment(tmp_path, module.flaky, grid(x=[1])).run()
    with pytest.raises(FolderConflictError, match="seed = 0, not 5"):
        _experiment(tmp_path, module.square, grid(x=[1]), seed=5).run()
    assert _calls(tmp_path) == 2  # the first experiment's two replicates, nothing else


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"operation": "no_such_module_xyz:op"}, ImportError, "no_such_module_xyz"),
        ({"operation": "assay._demo:nope"}, AttributeError, "nope"),
        ({"operation": "no colon"}, ValueError, "no colon"),
        ({"backend": {"backend": "ProcessPol"}}, ValueError, "ProcessPol"),
        ({"backend": {"backend": "Cached", "mdoe": "force"}}, ValueError, "mdoe"),
        ({"backend": "process"}, TypeError, "expected an assay backend or its dict"),
        ({"replicates": 0}, ValueError, "replicates = 0"),
        ({"seed": -1}, ValueError, "seed = -1"),
        ({"params": [{"x": object()}]}, TypeError, r"params\[0\]\['x'\]"),
        ({"name": ""}, ValueError, "name = ''"),
        ({"context": ["a"]}, TypeError, "context"),
    ],
)
def test_bad_input_fails_before_anything_runs(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    args: dict[str, Any] = {
        "name": "bad",
        "operation": "assay._demo:estimate_pi",
        "params": grid(n_samples=[10]),
        "folder": tmp_path / "exp",
        **kwargs,
    }
    name, operation, params = args.pop("name"), args.pop("operation"), args.pop("params")
    with pytest.raises(error, match=fragment):
        Experiment(name, operation, params, **args)
    assert not (tmp_path / "exp").exists()


def test_an_operation_workers_cannot_import_is_refused(tmp_path: Path) -> None:
    @assay.operation
    def local(params: dict[str, Any]) -> None:
        pass

    with pytest.raises(ValueError, match="cannot be imported by its ref"):
        Experiment("bad", local, folder=tmp_path)


def test_a_backend_with_another_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leave the backend's folder unset"):
        Experiment(
            "bad",
            "assay._demo:estimate_pi",
            grid(n_samples=[10]),
            backend=assay.Cached(folder=tmp_path / "elsewhere"),
            folder=tmp_path / "exp",
        )


def test_bad_on_code_change(tmp_path: Path) -> None:
    experiment = Experiment("x", "assay._demo:estimate_pi", grid(n_samples=[10]), folder=tmp_path)
    with pytest.raises(ValueError, match="on_code_change = 'maybe'"):
        experiment.run(on_code_change="maybe")  # type: ignore[arg-type]


# ---------------------------------------------------------------- progress and the package


def test_progress_bar_and_summary_line(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    module = ops()
    experiment = Experiment(
        "shown",
        module.square,
        grid(x=[1, 2]),
        folder=tmp_path / "e",
        context={"log_dir": str(tmp_path / "calls")},
        progress=True,
    )
    experiment.run()
    err = capsys.readouterr().err
    assert "2 done" in err
    assert "0 failed" in err
    assert "0 cached" in err
    assert "shown: 2 runs: 2 ran, 0 from cache, 0 failed" in err
    experiment.run()
    assert "shown: 2 runs: all from cache in" in capsys.readouterr().err


@pytest.mark.parametrize(("progress", "terminal"), [(None, False), (False, True)])
def test_no_bar_and_no_summary_line_off_a_terminal_or_when_switched_off(
    tmp_path: Path,
    ops: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    progress: bool | None,
    terminal: bool,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    module = ops()
    experiment = Experiment(
        "quiet",
        module.square,
        grid(x=[1, 2]),
        folder=tmp_path / "e",
        context={"log_dir": str(tmp_path / "calls")},
        progress=progress,
    )
    experiment.run()
    assert capsys.readouterr().err == ""
    assert experiment.last_summary is not None
    assert experiment.last_summary.executed == 2  # counted all the same


def test_automatic_progress_draws_on_a_terminal(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    module = ops()
    experiment = Experiment(
        "auto",
        module.square,
        grid(x=[1, 2]),
        folder=tmp_path / "e",
        context={"log_dir": str(tmp_path / "calls")},
    )
    experiment.run()
    err = capsys.readouterr().err
    assert "2 done" in err
    assert "auto: 2 runs: 2 ran, 0 from cache, 0 failed" in err


def test_experiment_meta_is_in_the_index(tmp_path: Path, ops: Any) -> None:
    module = ops()
    _experiment(tmp_path, module.square, grid(x=[1])).run()
    import sqlite3

    db = sqlite3.connect(tmp_path / "exp" / "index.sqlite")
    (value,) = db.execute("SELECT value FROM meta WHERE key = 'experiment'").fetchone()
    assert json.loads(value)["operation"] == module.square.ref


def test_a_run_in_a_slurm_job_records_the_job_and_its_cpus(
    tmp_path: Path, ops: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = ops()
    plain = _experiment(tmp_path / "plain", module.square, grid(x=[1])).run().records()[0]
    assert (plain.runtime["job"], plain.runtime["cpus"]) == (None, 1)
    # as in a task of a Slurm job array given 4 CPUs (a driver submitted with sbatch, too)
    monkeypatch.setenv("SLURM_JOB_ID", "80")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    record = _experiment(tmp_path / "job", module.square, grid(x=[1])).run().records()[0]
    assert (record.runtime["job"], record.runtime["cpus"]) == ("77_3", 4)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    record = _experiment(tmp_path / "single", module.square, grid(x=[1])).run().records()[0]
    assert record.runtime["job"] == "80"
