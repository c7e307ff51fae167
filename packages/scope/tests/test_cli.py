"""launch / run_cli: auto_param functions as a command line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from assay_scope import auto_param, launch, param_scope, run_cli

ROOT = Path(__file__).resolve().parents[3]


@auto_param("train")
def train(data: str, lr: float = 0.1, epochs: int = 10, amp: bool = False) -> dict[str, Any]:
    """Train a model.

    Args:
        data: where the data lives.
        lr: learning rate.
        epochs: passes over the data.
        amp: mixed precision.
    """
    return {"data": data, "lr": lr, "epochs": epochs, "amp": amp, "width": param_scope.width(8)}


def test_launch_one_function_with_options_and_defines() -> None:
    result = launch(train, argv=["d", "--lr", "0.5", "--amp", "yes", "-D", "train.epochs=3"])
    assert result == {"data": "d", "lr": 0.5, "epochs": 3, "amp": True, "width": 8}
    result = run_cli(train, argv=["d", "-D", "width=64", "--define", "train.lr=0.2"])
    assert result == {"data": "d", "lr": 0.2, "epochs": 10, "amp": False, "width": 64}


def test_options_beat_defines_and_leave_no_scope_behind() -> None:
    assert launch(train, argv=["d", "--epochs", "2", "-D", "train.epochs=3"])["epochs"] == 2
    assert param_scope.current().storage().storage() == {}


def test_help_lists_parameters_defaults_and_descriptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch(train, argv=["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "Train a model." in out
    assert "where the data lives." in out
    for option, text in [("--lr", "learning rate. (default: 0.1)"), ("--epochs", "(default: 10)")]:
        line = next(line for line in out.splitlines() if line.strip().startswith(option))
        assert text in line
    assert "mixed precision. (default: False)" in out
    assert "-D [KEY=VALUE ...], --define [KEY=VALUE ...]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["d", "--epochs", "abc"], "'abc' cannot be converted to int"),
        (["d", "--amp", "maybe"], "cannot be converted to bool"),
        (["d", "-D", "nokey"], "expects KEY=VALUE, got 'nokey'"),
        (["d", "-D", "train.epochs=1.5"], "-D train.epochs"),
        ([], "the following arguments are required: data"),
    ],
)
def test_bad_command_lines_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch(train, argv=argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_launch_refuses_a_function_without_auto_param() -> None:
    with pytest.raises(ValueError, match="decorated with @auto_param"):
        launch(lambda x=1: x, argv=[])


MODULE = '''
"""Tools for a test."""
from assay_scope import auto_param, launch, run_cli
from somewhere_else import imported

@auto_param
def fit(lr=0.1):
    """Fit a model."""
    return ("fit", lr)

@auto_param
def score(split="test"):
    """Score a model."""
    return ("score", split)

@auto_param
def _hidden(x=1):
    return x

def main(argv, entry=launch):
    return entry(argv=argv)
'''


def load_module(source: str) -> types.ModuleType:
    module = types.ModuleType("tools_under_test")

    def imported(value: int = 1) -> int:
        return value

    imported = auto_param(imported)
    sys.modules["somewhere_else"] = types.SimpleNamespace(imported=imported)  # type: ignore[assignment]
    try:
        exec(compile(source, "tools_under_test.py", "exec"), module.__dict__)
    finally:
        del sys.modules["somewhere_else"]
    return module


def test_launch_without_argument_exposes_the_public_functions_of_the_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = load_module(MODULE)
    assert module.main(["fit", "--lr", "0.5"]) == ("fit", 0.5)
    assert module.main(["score", "-D", "score.split=val"], run_cli) == ("score", "val")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    out = capsys.readouterr().out
    assert "Tools for a test." in out
    assert "fit" in out
    assert "Fit a model." in out
    assert "score" in out
    assert "Score a model." in out
    assert "_hidden" not in out
    assert "imported" not in out


def test_launch_with_a_single_function_accepts_its_name_or_not() -> None:
    module = load_module(MODULE.replace("def score", "def _score"))
    assert module.main(["--lr", "2"]) == ("fit", 2.0)
    assert module.main(["fit", "--lr", "3"]) == ("fit", 3.0)


def test_launch_without_functions_says_so() -> None:
    module = load_module("from assay_scope import launch\ndef main(argv): return launch(argv=argv)")
    with pytest.raises(RuntimeError, match="no public @auto_param function"):
        module.main([])


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "scope_cli.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_example_script_runs_from_the_command_line() -> None:
    done = run_example("train", "--lr", "0.01", "-D", "train.epochs=3", "-D", "model.width=64")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "train: lr=0.01 epochs=3 batch_size=32"
    assert lines[1] == "model: model.depth=2 model.width=64"
    assert [line.split(":")[0] for line in lines[2:]] == ["epoch 1", "epoch 2", "epoch 3"]
    losses = [float(line.rsplit(" ", 1)[1]) for line in lines[2:]]
    assert losses == sorted(losses, reverse=True)
    # Deterministic: a second run prints the same.
    assert (
        done.stdout
        == run_example(
            "train", "--lr", "0.01", "-D", "train.epochs=3", "-D", "model.width=64"
        ).stdout
    )


def test_the_example_help_lists_parameters_defaults_and_descriptions() -> None:
    done = run_example("train", "--help")
    assert done.returncode == 0, done.stderr
    assert "Train a toy model" in done.stdout
    assert "learning rate of the optimiser. (default: 0.1)" in done.stdout
    assert "number of passes over the data. (default: 5)" in done.stdout
    assert "-D [KEY=VALUE ...]" in done.stdout
    top = run_example("--help")
    assert "train" in top.stdout
    assert "evaluate" in top.stdout


def test_the_example_reports_a_bad_define_as_a_usage_error() -> None:
    done = run_example("train", "-D", "train.epochs=abc")
    assert done.returncode == 2
    assert "'train.epochs' = 'abc' cannot be converted to int" in done.stderr
    assert "Traceback" not in done.stderr


# This module uses ``from __future__ import annotations``, as much modern code does: the
# annotations below are strings until something resolves them.
@auto_param
def sweep(count: int, scale: float, name: str, lr: float = 0.1) -> tuple[Any, ...]:
    return count, scale, name, lr


def test_required_parameters_convert_by_their_annotation_under_future_annotations() -> None:
    assert launch(sweep, argv=["3", "0.5", "x", "--lr", "0.2"]) == (3, 0.5, "x", 0.2)


def test_a_required_int_that_does_not_parse_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch(sweep, argv=["three", "0.5", "x"])
    assert exit_info.value.code == 2
    assert "count" in capsys.readouterr().err


@auto_param
def positional(
    count: int, offset: int = 0, /, scale: float = 1.0, *, lr: float = 0.1
) -> tuple[Any, ...]:
    return count, offset, scale, lr


def test_positional_only_parameters_are_passed_by_position() -> None:
    assert launch(positional, argv=["3"]) == (3, 0, 1.0, 0.1)
    assert launch(positional, argv=["3", "--offset", "4"]) == (3, 4, 1.0, 0.1)
    argv = ["3", "--scale", "2", "--lr", "0.5"]
    assert launch(positional, argv=argv) == (3, 0, 2.0, 0.5)


@auto_param("fit")
def fit(batch_size: int = 32, learning_rate: float = 0.1) -> tuple[int, float]:
    """Fit.

    Args:
        batch_size: examples per step.
        learning_rate: step size.
    """
    return batch_size, learning_rate


def test_options_take_hyperparameters_underscore_spelling_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # scripts written for hyperparameter pass --batch_size; moving over must not break them
    assert launch(fit, argv=["--batch_size", "8", "--learning_rate", "0.5"]) == (8, 0.5)
    assert launch(fit, argv=["--batch-size", "8", "--learning-rate", "0.5"]) == (8, 0.5)
    assert launch(fit, argv=["--batch_size", "8", "--batch-size", "4"]) == (4, 0.1)  # the last
    with pytest.raises(SystemExit):
        launch(fit, argv=["--batch_size", "eight"])
    error = capsys.readouterr().err
    assert "batch_size" in error
    assert "'eight'" in error
    with pytest.raises(SystemExit):
        launch(fit, argv=["--help"])
    out = capsys.readouterr().out
    assert "--batch-size BATCH_SIZE" in out
    assert "--batch_size" not in out  # the help shows one spelling


# ---------------------------------------------------------------- launch() inside a function

SCRIPT_WITH_MAIN = '''
"""Tools whose commands are defined inside main()."""
import os
import sys

from assay_scope import auto_param, launch, param_scope, run_cli


@auto_param
def report(verbose=False):
    """Report at module level."""
    print(("report", verbose))


def main():
    @auto_param
    def fit(lr=0.1, epochs=1):
        """Fit a model."""
        print(("fit", lr, epochs, param_scope.model.width | 8))

    @auto_param
    def score(split="test"):
        """Score a model."""
        print(("score", split))

    entry = run_cli if os.environ.get("ENTRY") == "run_cli" else launch
    entry()


if __name__ == "__main__":
    main()
'''


def run_script(path: Path, *args: str, entry: str = "launch") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "ENTRY": entry},
    )


@pytest.mark.parametrize("entry", ["launch", "run_cli"])
def test_launch_called_in_a_function_finds_the_functions_defined_in_it(
    tmp_path: Path, entry: str
) -> None:
    script = tmp_path / "tools.py"
    script.write_text(SCRIPT_WITH_MAIN)
    done = run_script(
        script, "fit", "--lr", "0.5", "-D", "fit.epochs=3", "model.width=64", entry=entry
    )
    assert (done.returncode, done.stdout) == (0, "('fit', 0.5, 3, 64)\n"), done.stderr
    done = run_script(script, "score", "--split", "val", entry=entry)
    assert (done.returncode, done.stdout) == (0, "('score', 'val')\n"), done.stderr
    done = run_script(script, "report", "--verbose", "yes", entry=entry)
    assert (done.returncode, done.stdout) == (0, "('report', True)\n"), done.stderr
    listing = run_script(script, "--help", entry=entry).stdout
    assert "Tools whose commands are defined inside main()." in listing
    for line in ("fit", "Fit a model.", "score", "Score a model.", "report"):
        assert line in listing


def test_launch_takes_the_callers_globals_and_locals_when_given() -> None:
    module = load_module(MODULE)

    @auto_param
    def local(x: int = 1) -> tuple[str, int]:
        return "local", x

    local.__module__ = module.__name__  # defined "in" the module whose globals are given
    names = {"_caller_globals": vars(module), "_caller_locals": {"local": local}}
    assert launch(argv=["local", "--x", "4"], **names) == ("local", 4)  # type: ignore[arg-type]
    assert run_cli(argv=["fit", "--lr", "2"], **names) == ("fit", 2.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- several values after one -D


def test_one_define_takes_several_values() -> None:
    result = launch(train, argv=["d", "-D", "train.epochs=3", "width=64", "--lr", "0.5"])
    assert result == {"data": "d", "lr": 0.5, "epochs": 3, "amp": False, "width": 64}
    result = launch(train, argv=["d", "-D", "train.epochs=3", "width=2", "-D", "train.amp=on"])
    assert result == {"data": "d", "lr": 0.1, "epochs": 3, "amp": True, "width": 2}
    result = launch(train, argv=["-D", "width=64", "--", "d"])  # -- ends the list
    assert result["width"] == 64


def test_a_positional_argument_taken_by_define_is_a_usage_error_saying_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch(train, argv=["-D", "width=64", "d"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "expects KEY=VALUE, got 'd'" in error
    assert "--" in error.split("got 'd'")[1]  # how to end the list


# ---------------------------------------------------------------- -D values reach new threads


@auto_param("job")
def spawns(width: int = 8) -> tuple[Any, Any]:
    seen: list[Any] = []
    thread = threading.Thread(
        target=lambda: seen.append((param_scope.job.width(0), param_scope.model.depth(0)))
    )
    thread.start()
    thread.join()
    return width, seen[0]


def in_new_thread(read: Any) -> Any:
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(read()))
    thread.start()
    thread.join()
    return seen[0]


def test_threads_started_by_the_launched_function_see_the_defines() -> None:
    assert launch(spawns, argv=["-D", "job.width=3", "model.depth=2"]) == (3, (3, 2))
    assert launch(spawns, argv=["--width", "5", "-D", "model.depth=4"]) == (5, (0, 4))
    # Once launch returns, the defines are gone: for this thread and for threads started now.
    assert (param_scope.model.depth(0), in_new_thread(lambda: param_scope.model.depth(0))) == (
        0,
        0,
    )
