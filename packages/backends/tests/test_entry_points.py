"""How the steps layer finds these executors (an entry-point group), and ``current_job``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import assay_backends
import pytest
from assay_backends import current_job
from assay_steps import Backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11+, the package supports 3.10
    import tomli as tomllib

GROUP = "assay.backends"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def public_backends() -> set[str]:
    return {
        name
        for name in assay_backends.__all__
        if isinstance(getattr(assay_backends, name), type)
        and issubclass(getattr(assay_backends, name), Backend)
    }


def test_pyproject_declares_every_public_backend_under_its_class_name() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = project["entry-points"][GROUP]
    assert set(declared) == public_backends()
    assert declared == {name: f"assay_backends:{name}" for name in declared}


def test_installed_entry_points_load_the_backend_classes() -> None:
    # Fails on an install older than the pyproject: reinstall the package to refresh them.
    points = {
        p.name: p
        for p in metadata.entry_points(group=GROUP)
        if p.dist is not None and p.dist.name == "assay-backends"
    }
    assert set(points) == public_backends()
    for name, point in points.items():
        assert point.load() is getattr(assay_backends, name)
        assert Backend.resolve_class(name) is getattr(assay_backends, name)


@pytest.mark.slow
def test_a_backend_dict_loads_the_package_through_the_group_in_a_new_interpreter() -> None:
    probe = (
        "import sys\n"
        "from assay_steps import Backend\n"
        "assert 'assay_backends' not in sys.modules\n"
        "infra = Backend.model_validate({'backend': 'ProcessPool', 'folder': 'cache'})\n"
        "print(type(infra).__module__, type(infra).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["assay_backends._pools", "ProcessPool"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, (None, 1)),
        ({"SUBMITIT_LOCAL_JOB_ID": "4242"}, ("4242", 1)),
        ({"SLURM_JOB_ID": "80", "SUBMITIT_LOCAL_JOB_ID": "4242"}, ("80", 1)),
        ({"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "9"}, ("7_3", 1)),
        ({"SLURM_ARRAY_JOB_ID": "7", "SLURM_JOB_ID": "9"}, ("9", 1)),  # no task: the job
        ({"SLURM_JOB_ID": "", "SLURM_CPUS_PER_TASK": "8"}, (None, 8)),
        ({"SLURM_JOB_ID": "80", "SLURM_CPUS_PER_TASK": "0"}, ("80", 1)),
        ({"SLURM_JOB_ID": "80", "SLURM_CPUS_PER_TASK": "four"}, ("80", 1)),
    ],
)
def test_current_job_reads_the_schedulers_environment(
    environ: dict[str, str], expected: tuple[str | None, int]
) -> None:
    assert current_job(environ) == expected


def test_current_job_reads_this_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert current_job() == ("123", 2)
