"""Provenance and reproduction: params read, the diff of a dirty tree, `assay reproduce`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import _provenance

from assay import Experiment, Results, grid, reproduce
from assay._cli import main
from assay._comparison import compare_records, identical
from assay._diffs import DIFFS, store_diff
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import RunSpec

# The operation reads the knobs a test turns between the run and its reproduction from the
# environment, which the fresh process inherits: a planted difference.
OPS = """
import os

import numpy as np
from assay_ops import operation
from assay_scope import auto_param, param_scope


@auto_param("model")
def build(width=8, depth=2):
    return width * depth


@operation
def train(params, seeds, capture):
    rng = seeds.numpy()
    shift = float(os.environ.get("ASSAY_TEST_SHIFT", "0"))
    epochs = param_scope.epochs | 4
    lr = param_scope.lr | 0.1
    for step in range(epochs):
        loss = 1.0 / (step + 1) + lr * rng.random() + (shift if step == 3 else 0.0)
        capture.metric("loss", loss, step=step)
    capture.metric("size", np.int64(build()))
    capture.metric("weights", rng.random(3).astype(np.float32))
    capture.metric("nan", float("nan"))
    if os.environ.get("ASSAY_TEST_EXTRA"):
        capture.metric("extra", 1.0)
    if os.environ.get("ASSAY_TEST_FAIL"):
        raise RuntimeError("planted failure")
    capture.log(f"pid {os.getpid()}")
"""

NEEDS_GIT = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def ops(write_module: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("ASSAY_TEST_SHIFT", "ASSAY_TEST_EXTRA", "ASSAY_TEST_FAIL"):
        monkeypatch.delenv(name, raising=False)
    return write_module(OPS, "assay_reproduce_ops")


@pytest.fixture(autouse=True)
def _fresh_git_memory() -> Iterator[None]:
    # The git state is computed once per process; these tests change trees in between.
    _provenance._STATES.clear()
    yield
    _provenance._STATES.clear()


def sweep(ops: Any, folder: Path, **kwargs: Any) -> Results:
    kwargs.setdefault("params", grid(lr=[0.1, 0.2]))
    return Experiment("train", ops.train, folder=folder, progress=False, **kwargs).run()


def snapshot(folder: Path) -> dict[str, bytes]:
    """The bytes of every stored file but the index's (which SQLite may touch on open)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith("index.sqlite")
    }


def test_a_run_reproduces_bit_for_bit_in_a_fresh_process(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exp"
    results = sweep(ops, folder, replicates=2, scope={"model.width": 3})
    run_id = results.rows[3].run_id
    before = snapshot(folder)
    with ResultsIndex(folder) as index:
        stored = index.records([run_id])

    report = reproduce(folder, run_id)
    assert report.matches, report.differences
    assert report.metrics == ("loss", "size", "weights", "nan")
    assert report.lines() == [f"run {run_id}: all 4 metrics match bit for bit"]
    assert report.reproduced.logs != report.recorded.logs  # another process: another pid
    assert report.reproduced.logs[0] != f"pid {os.getpid()}"
    assert report.reproduced.metrics["size"] == [np.int64(6)]  # the experiment's scope
    assert report.warnings == ()
    # nothing stored changed: the rerun wrote into a folder of its own
    assert snapshot(folder) == before
    with ResultsIndex(folder) as index:
        assert index.records([run_id]) == stored

    # the command, with a prefix of the id as git takes one
    assert main(["reproduce", str(folder), run_id[:8]]) == 0
    assert capsys.readouterr().out == f"run {run_id}: all 4 metrics match bit for bit\n"


def test_a_planted_difference_is_reported_naming_the_metric_and_both_values(
    tmp_path: Path, ops: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exp"
    run_id = sweep(ops, folder).rows[0].run_id
    recorded = Results.load(folder).records()[0].metrics["loss"][3]

    monkeypatch.setenv("ASSAY_TEST_SHIFT", "0.5")
    monkeypatch.setenv("ASSAY_TEST_EXTRA", "1")
    report = reproduce(folder, run_id)
    assert not report.matches
    now = recorded + 0.5
    assert report.differences == (
        "metric extra: produced now, not recorded",
        f"metric loss: step 3: {recorded!r} (recorded) != {now!r} (now)",
    )
    assert main(["reproduce", str(folder), run_id]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run {run_id}: 2 differences from the recorded run:"
    assert f"  metric loss: step 3: {recorded!r} (recorded) != {now!r} (now)" in out

    monkeypatch.delenv("ASSAY_TEST_SHIFT")
    monkeypatch.delenv("ASSAY_TEST_EXTRA")
    monkeypatch.setenv("ASSAY_TEST_FAIL", "1")
    (line,) = reproduce(folder, run_id).differences
    assert line == "status: success (recorded) != failed (now); now RuntimeError: planted failure"


def test_edited_code_is_a_warning_and_its_effect_a_difference(
    tmp_path: Path, ops: Any, write_module: Callable[..., Any]
) -> None:
    folder = tmp_path / "exp"
    run_id = sweep(ops, folder).rows[0].run_id
    recorded_hash = Results.load(folder).records()[0].code_hash
    edited = OPS.replace('capture.metric("size", np.int64(build()))', "")
    write_module(edited, "assay_reproduce_ops")
    report = reproduce(folder, run_id)
    assert report.differences == ("metric size: recorded, missing now",)
    (warning,) = report.warnings
    assert warning.startswith(f"the code of operation {report.recorded.ref} changed")
    assert recorded_hash in warning
    assert report.reproduced.code_hash in warning


def test_values_compare_by_their_bits() -> None:
    nan = float("nan")
    other_nan = np.frombuffer(np.array([0x7FF8000000000001], dtype=np.uint64).tobytes())[0]
    assert identical(nan, float("nan"))
    assert not identical(nan, float(other_nan))  # a NaN with another payload
    assert not identical(0.0, -0.0)
    assert not identical(0.1 + 0.2, 0.3)
    assert not identical(1, 1.0)
    assert not identical(True, 1)
    assert not identical(np.float32(0.5), np.float64(0.5))
    assert identical(np.arange(3.0), np.arange(3.0))
    assert not identical(np.arange(3.0), np.arange(3.0).astype(np.float32))
    assert not identical(np.arange(3.0), np.arange(3.0).reshape(3, 1))
    assert identical([1.5, {"a": (nan,)}], [1.5, {"a": (nan,)}])
    assert identical(0.3, 0.3)


def test_compare_names_steps_counts_and_bits(ops: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ops.train.run(params={"lr": 0.1})
    same = ops.train.run(params={"lr": 0.1})
    assert compare_records(first, same) == []
    monkeypatch.setenv("ASSAY_TEST_SHIFT", "1e-9")
    shifted = ops.train.run(params={"lr": 0.1})
    (line,) = compare_records(first, shifted)
    assert line.startswith("metric loss: step 3: ")
    metrics = {**first.metrics, "loss": first.metrics["loss"][:2]}
    shorter = dataclasses.replace(first, metrics=metrics)
    assert compare_records(first, shorter) == ["metric loss: 4 values (recorded) != 2 values (now)"]
    nan_bits = dataclasses.replace(first, metrics={**first.metrics, "nan": [-math.nan]})
    (line,) = compare_records(first, nan_bits)  # NaNs print alike: their bytes say how they differ
    assert line.startswith("metric nan: value 0: float nan (bytes 000000000000f87f) (recorded)")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@NEEDS_GIT
def test_the_diff_of_a_dirty_tree_is_stored_once_per_experiment(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Path(ops.__file__).parent  # the folder of the operation's module
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / "notes.txt").write_text("first\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "code")
    (repo / "notes.txt").write_text("second\n")  # uncommitted
    folder = tmp_path / "exp"
    results = sweep(ops, folder, params=grid(lr=[0.1, 0.2]))
    sweep(ops, folder, params=grid(lr=[0.1, 0.2, 0.3]))  # a third run, in a later run() call
    (stored,) = (folder / DIFFS).iterdir()
    data = stored.read_bytes()
    assert b"-first\n+second\n" in data
    address = "sha256:" + hashlib.sha256(data).hexdigest()
    assert stored.name == address.partition(":")[2] + ".diff"
    records = Results.load(folder).records()
    assert len(records) == 3
    for record in records:
        assert record.provenance["git_dirty"] is True
        assert record.provenance["git_diff"] == address
        assert record.provenance["git_commit"] == git(repo, "rev-parse", "HEAD")
    # written only when absent: storing again leaves the file as it was
    stamp = stored.stat().st_mtime_ns
    assert store_diff(folder, ops.train) == stored
    assert stored.stat().st_mtime_ns == stamp

    # the tree changed since: reproducing still matches, and says where the run's diff is
    (repo / "notes.txt").write_text("third\n")
    git(repo, "commit", "-q", "-am", "later")
    report = reproduce(folder, results.rows[0].run_id)
    assert report.matches
    assert any(w.startswith("git commit: ") for w in report.warnings)
    (changes,) = [w for w in report.warnings if w.startswith("uncommitted changes")]
    assert f"diff {address} (recorded) != clean (now)" in changes
    assert str(stored) in changes
    assert main(["reproduce", str(folder), results.rows[0].run_id]) == 0
    assert "assay: warning: uncommitted changes" in capsys.readouterr().err


def test_assay_results_shows_the_params_each_run_read(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "exp")
    command = ["run", f"{ops.__name__}:train", "--grid", "lr=0.1,0.2", "--folder", folder]
    assert main([*command, "-D", "model.width=5"]) == 0
    capsys.readouterr()

    assert main(["results", folder, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert not any(key.startswith("read:") for key in plain[0])  # the default table stays as it was

    assert main(["results", folder, "--read", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert list(rows[0])[:4] == ["run_id", "lr", "read:epochs", "read:model.width"]
    assert {(r["lr"], r["read:epochs"], r["read:model.width"]) for r in rows} == {
        (0.1, 4, 5),  # epochs: the default the code used; model.width: the -D value
        (0.2, 4, 5),
    }
    assert "read:model.depth" in rows[0]
    assert "read:lr" not in rows[0]
    assert main(["results", folder, "--read"]) == 0
    assert "read:epochs" in capsys.readouterr().out
    records = Results.load(folder).records()
    assert records[0].params_read == {"epochs": 4, "lr": 0.1, "model.width": 5, "model.depth": 2}
    assert main(["results", folder, "--read", "--summary", "size"]) == 1
    assert "--read adds columns to the table of runs" in capsys.readouterr().err


def test_unknown_ambiguous_or_unfinished_runs_are_refused_clearly(
    tmp_path: Path, ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exp"
    results = sweep(ops, folder, params=grid(epochs=[1], lr=[i / 20 for i in range(17)]))
    ids = [row.run_id for row in results.rows]
    unknown = rf"run 'nope' is not in experiment folder '{re.escape(str(folder))}'"
    with pytest.raises(KeyError, match=unknown):
        reproduce(folder, "nope")
    assert main(["reproduce", str(folder), "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: KeyError: run 'nope' is not in experiment folder")
    # 17 runs: two of them start with the same hex digit
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(KeyError, match=rf"prefix '{first}' is ambiguous.*runs start with it"):
        reproduce(folder, first)
    with pytest.raises(ValueError, match="inside the experiment's runs/ folder"):
        reproduce(folder, ids[0], keep=folder / "runs" / ids[0])

    pending = tmp_path / "pending"
    spec = RunSpec.of({"lr": 0.1}, 0)
    with ResultsIndex(pending) as index:
        index.plan([spec])
    with pytest.raises(ValueError, match=rf"run {spec.run_id} .* has no record \(status pending\)"):
        reproduce(pending, spec.run_id[:5])

    # an operation of the script that ran the experiment: no fresh process can import it
    record = dataclasses.replace(ops.train.run(run_id=spec.run_id), ref="__main__:train")
    with ResultsIndex(pending) as index:
        index.store([Outcome(spec.run_id, "success", {}, 0.1, None, "h", record.to_json())])
    with pytest.raises(ValueError, match=r"__main__:train, defined in the script .* module"):
        reproduce(pending, spec.run_id)


def test_a_kept_rerun_holds_its_record_and_artifacts(tmp_path: Path, ops: Any) -> None:
    folder = tmp_path / "exp"
    run_id = sweep(ops, folder).rows[1].run_id
    kept = tmp_path / "again"
    report = reproduce(folder, run_id, keep=kept)
    assert report.matches
    assert json.loads((kept / "record.json").read_text())["run_id"] == run_id
    assert report.reproduced.runtime["run_dir"] == str(kept.resolve())


def test_a_context_the_index_keeps_only_as_json_is_a_warning(tmp_path: Path, ops: Any) -> None:
    exact = tmp_path / "exact"
    report = reproduce(exact, sweep(ops, exact, context={"shape": [2, 3]}).rows[0].run_id)
    assert report.warnings == ()
    lossy = tmp_path / "lossy"
    report = reproduce(lossy, sweep(ops, lossy, context={"shape": (2, 3)}).rows[0].run_id)
    assert report.matches  # the operation does not read it
    (warning,) = report.warnings
    assert "keeps only as JSON (tuples as lists" in warning
