"""The assay command: argument parsing, status, results, plot and one-line errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
from pathlib import Path

import pytest

import assay._cli as assay_cli
import assay._cmd_results as cmd_results
from assay._cli import main
from assay._cliargs import parse_grid, parse_value
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import plan
from assay._space import grid


def _folder(tmp_path: Path) -> Path:
    specs = plan(grid(n=[10, 100], method=["a", "b"]), replicates=2, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.set_meta("experiment", {"name": "demo", "operation": "mod:op"})
        index.store(
            Outcome(
                s.run_id,
                "success",
                {"err": s.params["n"] * 0.5 + s.replicate},
                0.1,
                None,
                "h",
                None,
            )
            for s in specs[1:]
        )
    return tmp_path


def test_parse_value_reads_json_then_falls_back_to_text() -> None:
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("false") is False
    assert parse_value("null") is None
    assert parse_value("sgd") == "sgd"


def test_parse_grid_and_its_errors() -> None:
    assert parse_grid(["n=1,2", "m=x"]) == {"n": [1, 2], "m": ["x"]}
    with pytest.raises(ValueError, match="--grid 'n': expected KEY=VALUE"):
        parse_grid(["n"])
    with pytest.raises(ValueError, match="parameter 'n' given twice"):
        parse_grid(["n=1", "n=2"])


def test_status_counts_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(_folder(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "experiment 'demo': operation mod:op" in out
    assert "8 runs: pending 1, success 7, failed 0, timeout 0, cancelled 0" in out


def test_results_as_csv_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(_folder(tmp_path))
    assert main(["results", folder, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8
    assert rows[1]["method"] == "a"
    assert float(rows[1]["err"]) == float(rows[1]["n"]) * 0.5 + int(rows[1]["replicate"])
    assert main(["results", folder, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in data].count("pending") == 1
    assert main(["results", folder]) == 0
    assert "8 runs in" in capsys.readouterr().out


def test_results_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(_folder(tmp_path))
    assert main(["results", folder, "--summary", "err", "--by", "n", "--json"]) == 0
    data = {row["n"]: row for row in json.loads(capsys.readouterr().out)}
    assert data[100]["count"] == 4
    assert data[100]["mean"] == pytest.approx(50.5)
    assert data[10]["count"] == 3  # the pending run is not counted


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    folder = _folder(tmp_path)
    out = tmp_path / "p.png"
    assert main(["plot", str(folder), "err", "--x", "n", "--hue", "method", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert str(out) in capsys.readouterr().out


def test_errors_are_one_line_unless_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: FileNotFoundError:")
    assert "has no results index" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "status", str(tmp_path / "missing")])


def test_plot_error_names_the_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    assert main(["plot", str(_folder(tmp_path)), "loss", "--x", "n"]) == 1
    assert "no metric 'loss'" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_run_status_results_and_cache_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "exp")
    args = ["run", "assay._demo:estimate_pi", "--grid", "n_samples=100,1000", "--replicates", "3"]
    assert main([*args, "--folder", folder, "--seed", "4"]) == 0
    assert main(["status", folder]) == 0
    out = capsys.readouterr().out
    assert "operation assay._demo:estimate_pi" in out
    assert "6 runs: pending 0, success 6" in out

    assert main(["results", folder, "--summary", "pi_estimate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["n_samples"], r["count"]) for r in rows] == [(100, 3), (1000, 3)]
    assert all(2.0 < r["mean"] < 4.0 for r in rows)

    # the same sweep again comes from the index; another operation in the folder is refused
    assert main([*args, "--folder", folder, "--seed", "4"]) == 0
    assert main(["run", "assay._demo:pi_table", "--folder", folder]) == 1
    assert "TypeError" in capsys.readouterr().err  # pi_table is not an operation

    assert main(["cache", "info", folder]) == 0
    info = capsys.readouterr().out
    assert "runs: 6" in info
    assert "cache files:" in info
    assert main(["cache", "clear", folder, "--yes"]) == 0
    assert "cleared" in capsys.readouterr().out
    assert main(["status", folder]) == 1
    assert "has no results index" in capsys.readouterr().err


def test_run_says_what_it_did_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In a batch job's log (no terminal), the command still reports what it did.
    folder = str(tmp_path / "exp")
    args = ["run", "assay._demo:estimate_pi", "--grid", "n_samples=100,1000", "--folder", folder]
    assert main(args) == 0
    assert "estimate_pi: 2 runs: 2 ran, 0 from cache, 0 failed, in" in capsys.readouterr().err
    assert main(args) == 0
    assert "estimate_pi: 2 runs: all from cache in" in capsys.readouterr().err


def test_run_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = str(tmp_path / "exp")
    assert main(["run", "nonexistent_module_q:op", "--folder", folder]) == 1
    assert capsys.readouterr().err.startswith("assay: error: ModuleNotFoundError:")
    assert main(["run", "assay._demo:estimate_pi", "--grid", "n_samples", "--folder", folder]) == 1
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["run", "assay._demo:estimate_pi", "-D", "x", "--folder", folder]) == 1
    assert "-D 'x': expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def test_errors_read_as_plain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A KeyError's own str() is quoted; the command prints the message as written.
    assert main(["plot", str(_folder(tmp_path)), "nope", "--x", "n"]) == 1
    assert capsys.readouterr().err == (
        "assay: error: KeyError: plot(): no metric 'nope'; the runs recorded ['err']\n"
    )


def test_cache_clear_refuses_a_folder_that_is_not_an_experiment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["cache", "clear", str(tmp_path)]) == 1
    assert "has no results index" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_an_error_that_surfaces_after_ctrl_c_still_counts_as_the_interrupt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C reaches the workers too; a broken pool can surface before the driver's interrupt.
    def interrupted_then_broken(args: object) -> int:
        with contextlib.suppress(KeyboardInterrupt):  # swallowed while the pool broke
            signal.raise_signal(signal.SIGINT)
        raise RuntimeError("a process in the pool was terminated abruptly")

    monkeypatch.setattr(cmd_results, "_cmd_status", interrupted_then_broken)
    assert assay_cli.main(["status", "anywhere"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_an_error_without_ctrl_c_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("a process in the pool was terminated abruptly")

    monkeypatch.setattr(cmd_results, "_cmd_status", broken)
    assert assay_cli.main(["status", "anywhere"]) == 1
    assert capsys.readouterr().err == (
        "assay: error: RuntimeError: a process in the pool was terminated abruptly\n"
    )
