"""launch / run_cli: what the usage line shows and how annotated parameters convert."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from assay_scope import auto_param, launch


@auto_param("job")
def job(name: str, dry_run: bool, limit: int | None = None, verbose: bool | None = None) -> Any:
    """Run a job."""
    return name, dry_run, limit, verbose


@pytest.mark.parametrize(("word", "expected"), [("false", False), ("no", False), ("1", True)])
def test_a_required_bool_converts_like_a_bool_default(word: str, expected: bool) -> None:
    # "false" as a string is truthy: the function would do what the user said not to.
    assert launch(job, argv=["j", word])[1] is expected


def test_a_required_bool_that_is_not_a_boolean_word_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launch(job, argv=["j", "maybe"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dry_run" in err
    assert "'maybe'" in err
    assert "bool" in err


def test_a_none_default_converts_nothing_whatever_the_annotation() -> None:
    # Options convert like the scope does, by the default's type; None converts nothing, so
    # an option and the -D spelling of the same parameter give the same value.
    assert launch(job, argv=["j", "no", "--limit", "5"])[2] == "5"
    assert launch(job, argv=["j", "no", "-D", "job.limit=5"])[2] == "5"


def test_the_usage_of_one_function_shows_the_command_line_that_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tool.py"])
    with pytest.raises(SystemExit):
        launch(job, argv=["--help"])
    usage = capsys.readouterr().out.split("\n\n", 1)[0]
    assert usage.startswith("usage: tool.py [-h]"), usage
    # What the usage line shows runs: the function is not named on the command line.
    assert launch(job, argv=["j", "no"]) == ("j", False, None, None)


TOOLS = """
from assay_scope import auto_param, launch


@auto_param("fit")
def fit(lr=0.1):
    return lr


@auto_param("score")
def score(split="test"):
    return split


def main(argv):
    return launch(argv=argv)
"""


def test_errors_of_a_subcommand_show_its_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tool.py"])
    namespace: dict[str, Any] = {"__name__": "tools_under_test"}
    exec(compile(TOOLS, "tools_under_test.py", "exec"), namespace)
    # A bad -D is reported after the subcommand was chosen: its usage names the subcommand.
    with pytest.raises(SystemExit):
        namespace["main"](["fit", "-D", "nokey"])
    err = capsys.readouterr().err
    assert err.startswith("usage: tool.py fit [-h]"), err
    assert "tool.py fit: error: argument -D/--define: expects KEY=VALUE" in err
