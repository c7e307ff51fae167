"""The command line as a newcomer meets it: --version, global options anywhere, help with
examples, import errors that name the module, and a file given as a folder."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from assay_ops import import_operation

from assay import Experiment, Results
from assay._cli import build_parser, main
from assay._clihelp import EXAMPLES
from assay._version import DISTRIBUTIONS, version_lines

# ---------------------------------------------------------------- --version


def test_version_prints_assay_and_each_layer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == version_lines()
    names = [line.split()[0] for line in lines]
    assert names == [*DISTRIBUTIONS, "Python"]
    assert lines[0] == f"assay {metadata.version('assay')}"
    for line in lines[:-1]:
        name, version = line.split(" ", 1)
        assert version == metadata.version(name)


@pytest.mark.parametrize("argv", [["run", "--version"], ["cache", "info", "--version"]])
def test_version_is_accepted_after_the_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)  # before the required arguments are checked
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.splitlines() == version_lines()


def test_a_layer_that_is_not_installed_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def version(name: str) -> str:
        if name == "assay-backends":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert "assay-backends not installed" in version_lines()


# ---------------------------------------------------------------- global options


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "status", "{missing}"],
        ["status", "--debug", "{missing}"],
        ["status", "{missing}", "--debug"],
        ["--debug", "cache", "info", "{missing}"],
        ["cache", "--debug", "info", "{missing}"],
        ["cache", "info", "{missing}", "--debug"],
    ],
    ids=" ".join,
)
def test_debug_is_accepted_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in argv]
    assert build_parser().parse_args(args).debug is True
    with pytest.raises(FileNotFoundError):  # the traceback, not the one-line error
        main(args)


def test_without_debug_anywhere_errors_stay_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build_parser().parse_args(["status", "x"]).debug is False
    assert main(["cache", "info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: FileNotFoundError:")
    assert err.count("\n") == 1


def test_run_takes_debug_after_its_options(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["run", "m:op", "--grid", "x=1", "--folder", str(tmp_path), "--debug"]
    )
    assert args.debug is True
    assert args.grid == ["x=1"]


# ---------------------------------------------------------------- help


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, f"{path} {name}".strip())


def _examples(help_text: str) -> list[str]:
    """The example commands at the end of a help text, continued lines joined."""
    tail = help_text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0]
    commands, current = [], ""
    for line in tail.splitlines():
        line = line.strip()
        if current:
            current += " " + line
        elif line.startswith("assay "):
            current = line
        if current and not current.endswith("\\"):
            commands.append(current)
            current = ""
        elif current:
            current = current[:-1].rstrip()
    return commands


def test_every_command_has_examples_that_parse() -> None:
    parser = build_parser()
    commands = list(_commands(parser))
    assert {path for path, _ in commands} == set(EXAMPLES)
    for path, command in commands:
        text = command.format_help()
        assert "\nexamples:\n" in text, path
        examples = _examples(text)
        assert 1 <= len(examples) <= 3, (path, examples)
        for example in examples:
            argv = shlex.split(example)[1:]
            assert " ".join(argv[: len(path.split())]) == path, example
            build_parser().parse_args(argv)  # a usage error exits: an example that lies fails


def test_descriptions_still_wrap() -> None:
    text = dict(_commands(build_parser()))["reproduce"].format_help()
    description = text.split("\n\n")[1]
    assert len(description.splitlines()) > 1
    assert max(len(line) for line in description.splitlines()) <= 100


def test_options_that_repeat_say_so() -> None:
    for path, command in _commands(build_parser()):
        for action in command._actions:
            if isinstance(action, argparse._AppendAction):
                assert "repeat" in (action.help or ""), (path, action.option_strings)


def test_values_read_as_json_say_so() -> None:
    run = dict(_commands(build_parser()))["run"]
    helps = {a.dest: a.help or "" for a in run._actions}
    assert "JSON" in helps["grid"]
    assert "JSON" in helps["define"]


# ---------------------------------------------------------------- import errors


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path (and the current one) for modules written by the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - names:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)
    importlib.invalidate_caches()


def test_a_missing_module_is_said_to_be_missing(modules: Path) -> None:
    with pytest.raises(ModuleNotFoundError) as error:
        import_operation("nc_nowhere:op")
    message = str(error.value)
    assert "no module named 'nc_nowhere'" in message
    assert "nc_nowhere.py" in message
    assert "was found" not in message


def test_a_missing_submodule_names_itself(modules: Path) -> None:
    (modules / "nc_pkg").mkdir()
    _write(modules, "nc_pkg/__init__.py", "")
    with pytest.raises(ModuleNotFoundError, match=r"no module named 'nc_pkg\.sub'.*nc_pkg/sub\.py"):
        import_operation("nc_pkg.sub:op")


def test_a_missing_import_inside_the_module_names_both(modules: Path) -> None:
    _write(modules, "nc_uses_torch.py", "import os\nimport nc_not_installed_xyz\n")
    with pytest.raises(ImportError) as error:
        import_operation("nc_uses_torch:op")
    assert not isinstance(error.value, ModuleNotFoundError)
    message = str(error.value)
    assert "module 'nc_uses_torch' was found but importing it failed" in message
    assert "ModuleNotFoundError: No module named 'nc_not_installed_xyz'" in message
    assert message.endswith("(in nc_uses_torch.py line 2)")
    assert isinstance(error.value.__cause__, ModuleNotFoundError)


def test_any_error_at_import_names_the_file_and_line(modules: Path) -> None:
    _write(modules, "nc_helper.py", '\n\nraise ValueError("bad config\\nsecond line")\n')
    _write(modules, "nc_main.py", "x = 1\nimport nc_helper\n")
    with pytest.raises(ImportError) as error:
        import_operation("nc_main:op")
    message = str(error.value)
    assert "module 'nc_main' was found but importing it failed: ValueError: bad config (" in message
    assert "second line" not in message
    assert message.endswith("(in nc_helper.py line 3, imported at nc_main.py line 2)")


def test_a_syntax_error_names_its_line(modules: Path) -> None:
    _write(modules, "nc_syntax.py", "x = 1\ndef f(:\n")
    with pytest.raises(ImportError, match=r"SyntaxError: .*\(in nc_syntax\.py line 2\)$"):
        import_operation("nc_syntax:op")


def test_the_command_prints_the_import_failure_in_one_line(
    modules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(modules, "nc_cli_mod.py", "import nc_not_installed_abc\n")
    assert main(["run", "nc_cli_mod:op", "--folder", str(modules / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("assay: error: ImportError: operation reference 'nc_cli_mod:op': ")
    assert "module 'nc_cli_mod' was found but importing it failed" in err
    assert "No module named 'nc_not_installed_abc' (in nc_cli_mod.py line 1)" in err
    assert main(["run", "nc_cli_absent:op", "--folder", str(modules / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: ModuleNotFoundError: operation reference")
    assert "no module named 'nc_cli_absent'" in err
    assert not (modules / "out").exists()


# ---------------------------------------------------------------- a file as the folder


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not an experiment")
    return path


def test_experiment_refuses_a_file_as_its_folder(a_file: Path) -> None:
    with pytest.raises(ValueError, match=r"^folder = '.*notes\.txt' is a file; expected a folder"):
        Experiment("x", "assay._demo:estimate_pi", folder=a_file, progress=False)
    with pytest.raises(ValueError, match=r"is inside '.*notes\.txt', which is a file; expected"):
        Experiment("x", "assay._demo:estimate_pi", folder=a_file / "sub", progress=False)
    assert a_file.read_text() == "not an experiment"


def test_results_load_refuses_a_file(a_file: Path) -> None:
    with pytest.raises(ValueError, match=r"is a file; expected the folder of an experiment"):
        Results.load(a_file)


def test_a_folder_made_by_another_process_meanwhile_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: two drivers starting together on one folder; the check saw it missing, the
    # other made it, and the check's next look (it exists) refused it as "not a folder".
    from assay._folderpath import check_folder

    folder = tmp_path / "runs"
    is_dir = Path.is_dir
    looks: list[Path] = []

    def made_after_the_first_look(path: Path) -> bool:
        if path == folder and not looks:
            looks.append(path)
            folder.mkdir()  # the other driver, between this look and the next
            return False
        return is_dir(path)

    monkeypatch.setattr(Path, "is_dir", made_after_the_first_look)
    assert check_folder(folder, "folder", "a folder") == folder
    assert looks == [folder]


def test_a_dangling_link_is_named(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(ValueError, match=r"is a link to '.*gone', which does not exist"):
        Experiment("x", "assay._demo:estimate_pi", folder=link, progress=False)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "assay._demo:estimate_pi", "--folder", "{file}"],
        ["status", "{file}"],
        ["results", "{file}"],
        ["logs", "{file}", "abc"],
        ["plot", "{file}", "loss", "--x", "n"],
        ["reproduce", "{file}", "abc"],
        ["cache", "info", "{file}"],
        ["cache", "explain", "{file}"],
        ["cache", "compact", "{file}"],
        ["cache", "migrate", "{file}"],
        ["cache", "clear", "{file}", "--yes"],
        ["cache", "prune", "{file}", "--stale-code"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_command_refuses_a_file_as_the_folder_in_one_line(
    a_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([a.replace("{file}", str(a_file)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"assay: error: ValueError: folder = {str(a_file)!r} is a file; ")
    assert err.count("\n") == 1
    assert a_file.read_text() == "not an experiment"
