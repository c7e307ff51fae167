"""The experiment layer's contract, point by point, where the other suites leave a gap.

Random search drawn reproducibly in any process; the operation travelling to workers by its
ref; the progress bar's counts and ETA; the index written by the driver alone; the columns of
``to_dataframe()``; the replicate spread of ``plot()``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assay import Experiment, ProcessPool, choice, grid, loguniform, randint, random
from assay import uniform as uniform_dist

OPS = """
import os
from pathlib import Path

from assay_ops import operation

MARKER = "{marker}"


@operation
def marked(params, capture):
    capture.metric("tag", MARKER)
    capture.metric("pid", os.getpid())


@operation
def flaky(context, params, capture):
    # one file per call: the test counts how often each run really ran
    calls = Path(context["calls"])
    calls.mkdir(parents=True, exist_ok=True)
    (calls / f"{{params['x']}}-{{len(list(calls.iterdir()))}}").touch()
    if params["x"] < 0 and Path(context["broken"]).exists():
        raise ValueError(f"x = {{params['x']}} is negative")
    capture.metric("pid", os.getpid())


@operation
def descending(params, capture):
    for step in range(3):
        capture.metric("loss", params["x"] * (3 - step))
    capture.metric("acc", 0.5)
"""


@pytest.fixture
def ops(write_module: Callable[..., Any]) -> Any:
    """An importable module of test operations, with a marker string unique to this test."""
    return write_module(OPS.format(marker=f"MARKER-{uuid.uuid4().hex}"), "assay_contract_ops")


def _python(code: str, *args: str, hash_seed: str = "0", path: Path | None = None) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- random search


SPACE = (
    "random(6, lr=loguniform(1e-4, 1e-1), wd=uniform(0.0, 0.5), k=randint(1, 1000), "
    "opt=choice(['adam', 'sgd', 'rmsprop']))"
)

PLAN_IN_A_NEW_PROCESS = f"""
import json, sys
from assay import Experiment, random, loguniform, uniform, randint, choice
space = {SPACE}
out = {{}}
for seed in (None, 3, 4):
    e = Experiment("r", "assay._demo:estimate_pi", space, seed=seed, folder=sys.argv[1])
    out[str(seed)] = [[s.run_id, s.params] for s in e.specs]
print(json.dumps(out))
"""


def _plans_here(folder: Path) -> dict[str, list[list[Any]]]:
    space = random(
        6,
        lr=loguniform(1e-4, 1e-1),
        wd=uniform_dist(0.0, 0.5),
        k=randint(1, 1000),
        opt=choice(["adam", "sgd", "rmsprop"]),
    )
    out = {}
    for seed in (None, 3, 4):
        experiment = Experiment("r", "assay._demo:estimate_pi", space, seed=seed, folder=folder)
        out[str(seed)] = [[s.run_id, s.params] for s in experiment.specs]
    return out


def test_random_search_draws_the_same_runs_in_another_process_and_others_for_another_seed(
    tmp_path: Path,
) -> None:
    here = _plans_here(tmp_path / "here")
    # a restart: a fresh interpreter, with another hash seed (set and dict order must not leak)
    for hash_seed in ("1", "2"):
        there = json.loads(
            _python(PLAN_IN_A_NEW_PROCESS, str(tmp_path / "there"), hash_seed=hash_seed)
        )
        assert there == here
    # another root seed draws other parameters, not merely other run seeds
    params = {seed: [p for _, p in plan] for seed, plan in here.items()}
    assert params["3"] != params["4"]
    assert params["None"] != params["3"]
    assert all(len(plan) == 6 for plan in here.values())


def test_a_restarted_random_sweep_resumes_instead_of_drawing_new_runs(tmp_path: Path) -> None:
    space = random(4, n_samples=randint(10, 200))
    first = Experiment(
        "r", "assay._demo:estimate_pi", space, seed=11, folder=tmp_path, progress=False
    )
    first.run()
    code = (
        "import sys\nfrom assay import Experiment, random, randint\n"
        "e = Experiment('r', 'assay._demo:estimate_pi', random(4, n_samples=randint(10, 200)),"
        " seed=11, folder=sys.argv[1], progress=False)\n"
        "e.run()\nprint(e.last_summary.skipped, e.last_summary.executed)\n"
    )
    assert _python(code, str(tmp_path), hash_seed="5").split() == ["4", "0"]


# ---------------------------------------------------------------- the operation's ref


LOAD_AND_RUN = """
import json, sys
import cloudpickle
step = cloudpickle.loads(open(sys.argv[1], "rb").read())
items = json.loads(open(sys.argv[2]).read())
module = sys.argv[3]
before = module in sys.modules
texts = list(step._run_batch(items))
print(json.dumps({"imported_by_unpickling": before, "after": module in sys.modules,
                  "texts": texts}))
"""


def test_the_operation_reaches_a_worker_by_its_ref_not_its_code(tmp_path: Path, ops: Any) -> None:
    import cloudpickle

    experiment = Experiment(
        "ref", ops.marked, grid(x=[1, 2]), folder=tmp_path / "exp", progress=False
    )
    payload = cloudpickle.dumps(experiment.step)  # what a pool or a job receives
    assert ops.marked.ref.encode() in payload
    assert ops.MARKER.encode() not in payload  # the function's code did not travel
    (tmp_path / "step.pkl").write_bytes(payload)
    (tmp_path / "items.json").write_text(json.dumps(experiment._items(experiment.specs)))
    out = json.loads(
        _python(
            LOAD_AND_RUN,
            str(tmp_path / "step.pkl"),
            str(tmp_path / "items.json"),
            ops.__name__,
            path=Path(ops.__file__).parent,
        )
    )
    # unpickling the step did not import the module; running a run imported it by its ref
    assert out == {**out, "imported_by_unpickling": False, "after": True}
    records = [json.loads(text) for text in out["texts"]]
    assert [r["status"] for r in records] == ["success", "success"]
    assert [r["metrics"]["tag"] for r in records] == [[ops.MARKER]] * 2
    assert {r["ref"] for r in records} == {ops.marked.ref}


# ---------------------------------------------------------------- progress


def test_the_bar_counts_done_failed_and_cached_runs_and_shows_an_eta(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken").touch()
    context = {"calls": str(tmp_path / "calls"), "broken": str(tmp_path / "broken")}

    def experiment() -> Experiment:
        return Experiment(
            "bar",
            ops.flaky,
            grid(x=[-2, -1, 1, 2, 3]),
            context=context,
            folder=tmp_path / "exp",
            progress=True,
        )

    experiment().run()
    err = capsys.readouterr().err
    assert "3 done" in err
    assert "2 failed" in err
    assert "0 cached" in err
    assert "5/5" in err
    assert re.search(r"ETA \d+:\d\d:\d\d", err)  # the time left, rich's estimate
    # the index is lost; the runs come back from the cache: counted as cached, not run again
    for path in (tmp_path / "exp").glob("index.sqlite*"):
        path.unlink()
    experiment().run()
    err = capsys.readouterr().err
    assert "3 done" in err
    assert "2 failed" in err
    assert "5 cached" in err
    assert len(list((tmp_path / "calls").iterdir())) == 5


# ---------------------------------------------------------------- the index and its writer


def test_only_the_driver_opens_the_index_and_retry_failed_reruns_failed_runs_on_a_pool(
    tmp_path: Path, ops: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # forked workers inherit this spy: a worker opening the index would log its own pid
    log = tmp_path / "connects"
    connect = sqlite3.connect

    def spy(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        with open(log, "a") as out:
            out.write(f"{os.getpid()}\n")
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    (tmp_path / "broken").touch()
    context = {"calls": str(tmp_path / "calls"), "broken": str(tmp_path / "broken")}

    def experiment() -> Experiment:
        return Experiment(
            "pool",
            ops.flaky,
            grid(x=[-2, -1, 1, 2]),
            context=context,
            backend=ProcessPool(max_jobs=2, start_method="fork"),
            folder=tmp_path / "exp",
            progress=False,
        )

    results = experiment().run()
    assert results.counts() == {"failed": 2, "success": 2}
    assert {row.metrics["pid"] for row in results if row.status == "success"} - {os.getpid()}
    (tmp_path / "broken").unlink()
    assert experiment().run().counts() == {"failed": 2, "success": 2}  # kept by default
    retried = experiment().run(retry_failed=True)
    assert retried.counts() == {"success": 4}
    calls = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "calls").iterdir())
    assert calls == ["-1", "-1", "-2", "-2", "1", "2"]  # only the failed runs ran again
    assert set(log.read_text().split()) == {str(os.getpid())}


# ---------------------------------------------------------------- Results


def test_to_dataframe_has_params_status_last_metric_values_and_duration(
    tmp_path: Path, ops: Any
) -> None:
    pytest.importorskip("pandas")
    results = Experiment(
        "df", ops.descending, grid(x=[1, 10]), replicates=2, folder=tmp_path, progress=False
    ).run()
    frame = results.to_dataframe()
    assert len(frame) == 4
    assert {"x", "status", "loss", "acc", "duration", "replicate", "run_id"} <= set(frame.columns)
    assert list(frame["loss"]) == [1, 1, 10, 10]  # the last of 3x, 2x, 1x
    assert list(frame["x"]) == [1, 1, 10, 10]
    assert list(frame["status"]) == ["success"] * 4
    assert all(d > 0 for d in frame["duration"])
    records = {r.run_id: r for r in results.records()}
    for _, row in frame.iterrows():
        assert row["duration"] == records[row["run_id"]].duration


def test_plot_draws_every_replicate_and_a_band_of_one_std_around_the_mean(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    results = Experiment(
        "pi",
        "assay._demo:estimate_pi",
        grid(n_samples=[100, 400]),
        replicates=4,
        folder=tmp_path,
        progress=False,
    ).run()
    png = tmp_path / "pi.png"
    (axes,) = results.plot("pi_estimate", x="n_samples", out=png).axes
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    values = {
        n: [r.metrics["pi_estimate"] for r in results.filter(n_samples=n)] for n in (100, 400)
    }
    # every replicate is a dot
    dots = sorted(
        (float(x), float(y))
        for collection in axes.collections
        if hasattr(collection, "get_offsets")
        for x, y in collection.get_offsets()
        if len(collection.get_offsets()) == 8
    )
    assert dots == sorted((float(n), v) for n, vs in values.items() for v in vs)
    # the band spans mean ± sample std at every x
    bands = [
        c
        for c in axes.collections
        if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
    ]
    assert len(bands) == 1
    vertices = bands[0].get_paths()[0].vertices
    for n, vs in values.items():
        ys = [y for x, y in vertices if x == n]
        mean, std = statistics.fmean(vs), statistics.stdev(vs)
        assert std > 0
        assert min(ys) == pytest.approx(mean - std)
        assert max(ys) == pytest.approx(mean + std)


# ---------------------------------------------------------------- bad input


def test_an_operation_ref_whose_module_exits_at_import_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a training script that parses its command line at import, named as the operation's module
    name = f"assay_contract_exits_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text('raise SystemExit("usage: train.py --data DIR")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(Exception, match=name) as error:  # not SystemExit: it ends the caller
            Experiment("exits", f"{name}:op", folder=tmp_path / "exp")
    finally:
        sys.modules.pop(name, None)
    assert isinstance(error.value, ImportError)
    assert not (tmp_path / "exp").exists()
