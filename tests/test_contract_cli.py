"""The ``assay`` command's contract: every subcommand, its options, and one-line errors."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from assay import ProcessPool, Results
from assay._cli import entry_point, main
from assay._demo import SAMPLE_SIZES

ROOT = Path(__file__).resolve().parent.parent

OPS = """
import os

from assay_ops import operation
from assay_scope import param_scope


@operation
def scoped(params, seeds, capture):
    capture.metric("width", param_scope.model.width | 0)
    capture.metric("pid", os.getpid())
    capture.metric("noise", float(seeds.numpy().random()))
"""


@pytest.fixture
def ops(write_module: Callable[..., Any]) -> str:
    """The name of an importable module holding the operation ``scoped``."""
    return str(write_module(OPS, "assay_contract_cli").__name__)


def test_run_with_grid_replicates_process_backend_and_defines(
    tmp_path: Path, ops: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "runs")
    command = ["run", f"{ops}:scoped", "--grid", "x=1,2", "--replicates", "5"]
    command += ["--backend", "process", "--max-jobs", "2", "--folder", folder]
    assert main([*command, "-D", "model.width=32"]) == 0
    assert main(["results", folder, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["x"], r["replicate"]) for r in rows) == [
        (x, r) for x in (1, 2) for r in range(5)
    ]
    assert {r["status"] for r in rows} == {"success"}
    assert {r["width"] for r in rows} == {32}  # -D reached the operation in the workers
    assert os.getpid() not in {r["pid"] for r in rows}
    assert len({r["noise"] for r in rows}) == 10  # each replicate its own stream


def test_results_prints_csv_or_json_not_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "exp")
    assert (
        main(["run", "assay._demo:estimate_pi", "--grid", "n_samples=50,60", "--folder", folder])
        == 0
    )
    capsys.readouterr()
    assert main(["results", folder, "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split(",")
    assert {"n_samples", "status", "pi_estimate", "abs_error", "duration"} <= set(header)
    assert len(lines) == 3
    assert main(["results", folder, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["n_samples"] for row in rows] == [50, 60]
    with pytest.raises(SystemExit) as exit_info:
        main(["results", folder, "--csv", "--json"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["run", "no_such_module_zz:op", "--folder", "{tmp}/r"], ModuleNotFoundError),
        (
            ["run", "assay._demo:estimate_pi", "--grid", "n_samples=1,1", "--folder", "{tmp}/r"],
            ValueError,
        ),
        (
            ["run", "assay._demo:estimate_pi", "--replicates", "0", "--folder", "{tmp}/r"],
            ValueError,
        ),
        (["status", "{tmp}/missing"], FileNotFoundError),
        (["results", "{tmp}/missing", "--csv"], FileNotFoundError),
        (["results", "{tmp}/exp", "--summary", "nope"], KeyError),
        (["plot", "{tmp}/exp", "nope", "--x", "n_samples"], KeyError),
        (["plot", "{tmp}/exp", "pi_estimate", "--x", "nope"], KeyError),
        (["cache", "info", "{tmp}/missing"], FileNotFoundError),
        (["cache", "clear", "{tmp}/missing"], FileNotFoundError),
        (["reproduce", "{tmp}/exp", "nope"], KeyError),
        (["demo", "--folder", "{tmp}/d", "--replicates", "0"], ValueError),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else v.__name__,
)
def test_every_subcommand_reports_an_error_in_one_line_unless_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], error: type[Exception]
) -> None:
    pytest.importorskip("matplotlib")
    folder = str(tmp_path / "exp")
    assert (
        main(["run", "assay._demo:estimate_pi", "--grid", "n_samples=50", "--folder", folder]) == 0
    )
    capsys.readouterr()
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"assay: error: {error.__name__}: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err + captured.out
    with pytest.raises(error):
        main(["--debug", *args])
    assert not (tmp_path / "r").exists()
    assert not (tmp_path / "d").exists()


def test_the_console_script_is_the_assay_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["assay"].partition(":")
    assert getattr(importlib.import_module(module), name) is entry_point
    monkeypatch.setattr(sys, "argv", ["assay", "status", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        entry_point()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("assay: error: FileNotFoundError:")


def test_the_demo_command_runs_then_completes_from_cache_without_starting_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    argv = ["demo", "--folder", str(folder), "--replicates", "2", "--max-jobs", "2"]
    assert main(argv) == 0
    first = capsys.readouterr()
    runs = 2 * len(SAMPLE_SIZES)
    assert f"pi: {runs} runs: {runs} ran, 0 from cache, 0 failed" in first.err
    for column in ("n_samples", "mean estimate", "std estimate", "mean |error|", "std |error|"):
        assert column in first.out
    assert "run the demo again" in first.out
    pytest.importorskip("matplotlib")
    assert (folder / "plots" / "abs_error_by_n_samples.png").is_file()

    # the second time nothing is computed: not even a worker process is started
    def no_pool(self: object, workers: int) -> None:
        raise AssertionError("the second demo started a process pool")

    monkeypatch.setattr(ProcessPool, "_pool", no_pool)
    assert main(argv) == 0
    second = capsys.readouterr()
    assert re.search(rf"all {runs} runs came from the cache in \d+\.\d+ s", second.out)
    assert f"pi: {runs} runs: all from cache in" in second.err
    assert Results.load(folder).counts() == {"success": runs}


def test_the_second_demo_keeps_the_plot_of_the_same_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "demo"
    argv = ["demo", "--folder", str(folder), "--replicates", "2", "--max-jobs", "2"]
    assert main(argv) == 0
    png = folder / "plots" / "abs_error_by_n_samples.png"
    drawn = png.read_bytes()

    # the same runs from the cache: the plot on disk is theirs, so it is not drawn again
    def no_plot(self: Results, *args: object, **kwargs: object) -> None:
        raise AssertionError("the second demo drew the plot of the same runs again")

    monkeypatch.setattr(Results, "plot", no_plot)
    assert main(argv) == 0
    assert "plot of the error against the sample size" in capsys.readouterr().out
    assert png.read_bytes() == drawn
    # a plot that is not of these runs (replaced, or removed) is drawn again
    monkeypatch.undo()
    png.write_bytes(b"not this plot")
    assert main(argv) == 0
    assert png.read_bytes() != b"not this plot"
    png.unlink()
    assert main(argv) == 0
    assert png.is_file()


EXITS_AT_IMPORT = {
    "plain": 'raise SystemExit("usage: train.py --data DIR")\n',
    "argparse": (
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        'parser.add_argument("--data", required=True)\n'
        "parser.parse_args()\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(EXITS_AT_IMPORT))
def test_an_operation_module_exiting_at_import_is_a_one_line_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    # a training script that parses its command line at import, named as the operation's module
    name = f"assay_contract_exits_{kind}_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(EXITS_AT_IMPORT[kind])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        status = main(["run", f"{name}:op", "--folder", str(tmp_path / "r")])
    finally:
        sys.modules.pop(name, None)
    err = capsys.readouterr().err
    assert status == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("assay: error: ")
    assert name in last
    assert "exit" in last
    if kind == "plain":
        assert err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_backend_refusing_an_option_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the inline backend has no worker limit: the line must say which field was refused
    argv = ["run", "assay._demo:estimate_pi", "--grid", "n_samples=10", "--max-jobs", "2"]
    assert main([*argv, "--folder", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("assay: error: ")
    assert "max_jobs" in err
    assert "Extra inputs are not permitted" in err
