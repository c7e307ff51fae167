"""The job settings of ``assay run``: --time, --mem, ..., --backend-config, and their errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from assay._cli import build_parser, main
from assay._jobopts import JobOptionError, parse_mem, parse_time


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("90", 90),
        ("1", 1),
        ("0:30", 1),  # MM:SS, rounded up to a whole minute
        ("5:00", 5),
        ("1:30:00", 90),
        ("2:00:01", 121),
        ("1-0", 1440),
        ("1-2", 1560),  # D-HH
        ("1-2:30", 1590),  # D-HH:MM
        ("0-0:45:00", 45),
    ],
)
def test_time_is_read_as_slurm_reads_it(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "1:2:3:4", "-5", "0", "0:00", "1.5", "a-1"])
def test_a_bad_time_names_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(JobOptionError, match=r"--time .*(H:MM:SS|above zero)"):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "gb"),
    [("8G", 8.0), ("8g", 8.0), ("500M", 500 / 1024), ("1T", 1024.0), ("2048", 2.0),
     ("1048576K", 1.0), ("1.5G", 1.5), ("4GB", 4.0)],
)  # fmt: skip
def test_mem_is_read_with_its_suffix(text: str, gb: float) -> None:
    assert parse_mem(text) == pytest.approx(gb)


@pytest.mark.parametrize("text", ["", "G", "8X", "-1G", "0G", "eight"])
def test_a_bad_mem_names_the_value_and_the_suffixes(text: str) -> None:
    with pytest.raises(JobOptionError, match=r"--mem .*K, M, G or T suffix"):
        parse_mem(text)


def _backend(argv: list[str]) -> dict[str, object]:
    from assay._cmd_run import _run_backend

    args: argparse.Namespace = build_parser().parse_args(["run", "m:op", "--folder", "f", *argv])
    return _run_backend(args)


def test_options_become_backend_fields() -> None:
    backend = _backend(
        ["--backend", "slurm", "--time", "1:00:00", "--mem", "8G", "--cpus", "4", "--gpus", "1",
         "--partition", "debug", "--account", "lab", "--qos", "high", "--max-jobs", "16",
         "--slurm", "mail_type=END", "--slurm", "exclusive-node=1",
         "--setup", "module load cuda", "--setup", "echo hi"]
    )  # fmt: skip
    assert backend == {
        "backend": "Slurm",
        "timeout_min": 60,
        "mem_gb": 8.0,
        "cpus_per_task": 4,
        "gpus_per_node": 1,
        "partition": "debug",
        "account": "lab",
        "qos": "high",
        "setup": ["module load cuda", "echo hi"],
        "additional_parameters": {"mail_type": "END", "exclusive_node": 1},
        "max_jobs": 16,
    }


def test_a_config_file_gives_defaults_that_options_override(tmp_path: Path) -> None:
    config = tmp_path / "slurm.toml"
    config.write_text(
        'backend = "slurm"\npartition = "gpu"\ntimeout_min = 30\nmem_gb = 4\n'
        '[additional_parameters]\nmail_type = "END"\nnice = 10\n'
    )
    backend = _backend(["--backend-config", str(config), "--time", "45", "--slurm", "nice=5"])
    assert backend == {
        "backend": "Slurm",
        "partition": "gpu",
        "timeout_min": 45,
        "mem_gb": 4,
        "additional_parameters": {"mail_type": "END", "nice": 5},
    }


@pytest.mark.parametrize("name", ["Slurm", "slurm", "SLURM"])
def test_the_config_file_may_name_the_backend_by_its_class(tmp_path: Path, name: str) -> None:
    config = tmp_path / "slurm.toml"
    config.write_text(f'backend = "{name}"\npartition = "gpu"\n')
    assert _backend(["--backend-config", str(config)]) == {"backend": "Slurm", "partition": "gpu"}


def test_a_bad_key_of_the_config_file_names_key_value_and_the_fields(tmp_path: Path) -> None:
    config = tmp_path / "slurm.toml"
    config.write_text('backend = "slurm"\npartitoin = "gpu"\n')
    with pytest.raises(JobOptionError) as caught:
        _backend(["--backend-config", str(config)])
    message = str(caught.value)
    assert f"--backend-config {config}: key 'partitoin' = 'gpu'" in message
    assert "not a field of the Slurm backend" in message
    assert "partition" in message


def test_a_bad_value_of_the_config_file_says_what_was_expected(tmp_path: Path) -> None:
    config = tmp_path / "slurm.toml"
    config.write_text('backend = "slurm"\ntimeout_min = "soon"\n')
    with pytest.raises(JobOptionError, match=r"key 'timeout_min' = 'soon': .*integer"):
        _backend(["--backend-config", str(config)])


def test_config_file_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("partition = \n")
    argv = ["run", "m:op", "--folder", str(tmp_path / "x"), "--backend-config", str(config)]
    assert main(argv) == 1
    assert "is not valid TOML" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "missing.toml")]) == 1
    assert "cannot read it" in capsys.readouterr().err
    config.write_text('backend = "cluster"\n')
    assert main(argv) == 1
    assert "key 'backend' = 'cluster'; expected one of auto, inline" in capsys.readouterr().err


def test_job_options_are_refused_for_a_backend_without_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "m:op", "--folder", str(tmp_path / "x"), "--time", "10"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "job settings (timeout_min) apply to --backend local, slurm, auto" in err
    assert "--backend inline runs no jobs" in err
    assert not (tmp_path / "x").exists()


def test_bad_option_values_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "m:op", "--folder", str(tmp_path / "x"), "--backend", "slurm"]
    assert main([*base, "--mem", "lots"]) == 1
    assert "--mem 'lots'" in capsys.readouterr().err
    assert main([*base, "--slurm", "exclusive"]) == 1
    assert "--slurm 'exclusive': expected KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "--cpus", "0"]) == 1
    assert "'cpus_per_task' = 0" in capsys.readouterr().err


def test_every_backend_name_of_the_command_line_resolves_to_a_backend_class() -> None:
    # The CLI's own vocabulary ("process" -> "ProcessPool"): each must name a backend that is
    # registered or offered through the "assay.backends" entry-point group.
    from assay_steps import Backend

    from assay._jobopts import BACKENDS

    for option, name in BACKENDS.items():
        assert Backend.resolve_class(name).__name__ == name, option
