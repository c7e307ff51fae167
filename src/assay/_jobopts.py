"""The job settings of ``assay run``: time, memory, partition... and ``--backend-config``.

Each option maps to a field of the submitit backends (``LocalProcess``, ``Slurm``, ``Auto``);
a TOML file of backend fields (``--backend-config``) gives defaults that the options override.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Backend names accepted by ``assay run --backend``, mapped to the registered class names.
BACKENDS = {
    "inline": "Cached",
    "thread": "ThreadPool",
    "process": "ProcessPool",
    "local": "LocalProcess",
    "slurm": "Slurm",
    "auto": "Auto",
}

#: Backends that run jobs: the only ones the job options apply to.
JOB_BACKENDS = ("local", "slurm", "auto")


class JobOptionError(ValueError):
    """A job option or a key of the backend config file that cannot be used."""


_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int:
    """Read a time limit as Slurm's ``--time`` does; return whole minutes (rounded up).

    Accepted: ``MINUTES``, ``MINUTES:SECONDS``, ``HOURS:MINUTES:SECONDS``, ``DAYS-HOURS``,
    ``DAYS-HOURS:MINUTES`` and ``DAYS-HOURS:MINUTES:SECONDS``.

    Raises:
        JobOptionError: anything else, or a limit of zero.

    Examples:
        >>> parse_time("90"), parse_time("1:30:00"), parse_time("2-0"), parse_time("0:30")
        (90, 90, 2880, 1)

    """
    found = _CLOCK.match(text.strip())
    if found is None:
        raise JobOptionError(
            f"--time {text!r}: expected minutes (90), MM:SS, H:MM:SS, D-HH, D-HH:MM or "
            "D-HH:MM:SS as Slurm reads them"
        )
    days, first, second, third = found.groups()
    numbers = [int(n) for n in (first, second, third) if n is not None]
    if days is not None:
        # after a day count the fields are hours, then minutes, then seconds
        hours, minutes, seconds = ([*numbers, 0, 0])[:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(numbers) == 3:
        total = (numbers[0] * 60 + numbers[1]) * 60 + numbers[2]
    elif len(numbers) == 2:
        total = numbers[0] * 60 + numbers[1]
    else:
        total = numbers[0] * 60
    if total <= 0:
        raise JobOptionError(f"--time {text!r}: expected a time limit above zero")
    return math.ceil(total / 60)


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)
_UNIT = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0, "": 1 / 1024}


def parse_mem(text: str) -> float:
    """Read a memory size as Slurm's ``--mem`` does (powers of 1024; no unit: megabytes).

    Returns:
        The size in GB (the backends' ``mem_gb``).

    Raises:
        JobOptionError: not a positive number with an optional K, M, G or T suffix.

    Examples:
        >>> parse_mem("8G"), parse_mem("512M"), parse_mem("1T"), parse_mem("2048")
        (8.0, 0.5, 1024.0, 2.0)

    """
    found = _MEMORY.match(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise JobOptionError(
            f"--mem {text!r}: expected a positive size with a K, M, G or T suffix (8G, 500M; "
            "no suffix: megabytes, as Slurm reads it)"
        )
    return float(found.group(1)) * _UNIT[found.group(2).upper()]


def add_job_arguments(run: argparse.ArgumentParser) -> None:
    """Add the job options to the ``assay run`` parser."""
    jobs = run.add_argument_group(
        "job settings",
        "for --backend local, slurm or auto; they override --backend-config",
    )
    jobs.add_argument(
        "--backend-config",
        metavar="FILE.toml",
        help='a TOML file of backend fields (e.g. partition = "gpu", timeout_min = 60, '
        'setup = ["module load cuda"], backend = "slurm")',
    )
    jobs.add_argument(
        "--time", metavar="LIMIT", help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS"
    )
    jobs.add_argument("--partition", help="Slurm partition")
    jobs.add_argument("--mem", metavar="SIZE", help="memory per job, e.g. 8G or 500M")
    jobs.add_argument("--cpus", type=int, metavar="N", help="CPUs per task")
    jobs.add_argument("--gpus", type=int, metavar="N", help="GPUs per node")
    jobs.add_argument("--account", help="Slurm account")
    jobs.add_argument("--qos", help="Slurm quality of service")
    jobs.add_argument(
        "--array-parallelism",
        type=int,
        metavar="N",
        help="most array tasks running at once (default: no limit)",
    )
    jobs.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm mail_type=END (repeatable)",
    )
    jobs.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="CMD",
        help="a shell line run before each job, e.g. 'module load cuda' (repeatable)",
    )
    jobs.add_argument("--conda", metavar="ENV", help="conda environment the jobs activate")
    jobs.add_argument("--venv", metavar="PATH", help="virtual environment the jobs activate")
    jobs.add_argument(
        "--code-snapshot",
        metavar="DIR",
        help="copy the code here at submission: jobs run that copy, whatever is edited since",
    )
    jobs.add_argument("--log-folder", metavar="DIR", help="where the jobs' logs go")


#: Each job option: (attribute of the parsed arguments, backend field, Slurm only).
_OPTIONS = (
    ("time", "timeout_min", False),
    ("mem", "mem_gb", False),
    ("cpus", "cpus_per_task", False),
    ("gpus", "gpus_per_node", False),
    ("partition", "partition", True),
    ("account", "account", True),
    ("qos", "qos", True),
    ("array_parallelism", "array_parallelism", False),
    ("conda", "conda_env", False),
    ("venv", "venv", False),
    ("code_snapshot", "code_snapshot", False),
    ("log_folder", "log_folder", False),
)


def option_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Return the backend fields the job options of ``args`` set (their spelling as options).

    Raises:
        JobOptionError: a value that cannot be read (``--time``, ``--mem``, ``--slurm``).

    """
    fields: dict[str, Any] = {}
    for name, field, _ in _OPTIONS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "time":
            value = parse_time(value)
        elif name == "mem":
            value = parse_mem(value)
        fields[field] = value
    if getattr(args, "setup", None):
        fields["setup"] = list(args.setup)
    extra = {}
    for item in getattr(args, "slurm", None) or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise JobOptionError(f"--slurm {item!r}: expected KEY=VALUE (an sbatch option)")
        extra[key] = _plain(value)
    if extra:
        fields["additional_parameters"] = extra
    return fields


def _plain(text: str) -> int | float | str:
    """Read an sbatch value: an int or a float when it is one, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _toml() -> Any:
    """Return the TOML reader: the standard library's (Python 3.11+), else ``tomli``."""
    if sys.version_info >= (3, 11):
        import tomllib  # here: only a run with a config file needs it

        return tomllib
    try:
        import tomli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise JobOptionError(
            "--backend-config needs a TOML reader: Python 3.11 or later, or the tomli "
            "package (pip install tomli)"
        ) from None
    return tomli


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a ``--backend-config`` TOML file: a table of backend fields.

    Raises:
        JobOptionError: the file cannot be read or is not TOML (the message names it).

    """
    toml = _toml()
    try:
        with open(path, "rb") as file:
            data: dict[str, Any] = toml.load(file)
            return data
    except OSError as error:
        raise JobOptionError(
            f"--backend-config {str(path)!r}: cannot read it ({error.strerror or error}); "
            "expected a TOML file of backend fields"
        ) from None
    except toml.TOMLDecodeError as error:
        raise JobOptionError(
            f"--backend-config {str(path)!r} is not valid TOML ({error}); expected a table of "
            'backend fields, e.g. partition = "gpu"'
        ) from None


def backend_settings(
    name: str, config: Mapping[str, Any], options: Mapping[str, Any], source: str
) -> dict[str, Any]:
    """Merge the config file's fields and the options' into the backend dict, checked.

    ``name`` is the ``--backend`` choice; ``source`` names the config file in errors. The
    options override the file; ``additional_parameters`` merge key by key.

    Raises:
        JobOptionError: job settings for a backend without jobs, or a key or value the
            backend does not take (the message names the key, the value and what was
            expected).

    """
    from assay_steps import Backend

    merged: dict[str, Any] = {**config, **options}
    if "additional_parameters" in config and "additional_parameters" in options:
        merged["additional_parameters"] = {
            **config["additional_parameters"],
            **options["additional_parameters"],
        }
    if options and name not in JOB_BACKENDS:
        given = ", ".join(sorted(options))
        raise JobOptionError(
            f"job settings ({given}) apply to --backend {', '.join(JOB_BACKENDS)}; "
            f"--backend {name} runs no jobs"
        )
    cls = Backend.resolve_class(BACKENDS[name])
    fields = cls.model_fields
    for key, value in merged.items():
        if key not in fields or key in ("folder", "backend"):
            known = ", ".join(k for k in fields if k not in ("folder", "backend"))
            where = f"{source}: key" if key in config else "option"
            raise JobOptionError(
                f"{where} {key!r} = {value!r} is not a field of the {cls.__name__} backend; "
                f"expected one of: {known}"
            )
    import pydantic

    try:
        cls.model_validate(merged)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        key = str(first.get("loc", ("?",))[0])
        where = f"{source}: key" if key in config and key not in options else "option for"
        raise JobOptionError(
            f"{where} {key!r} = {merged.get(key)!r}: {first.get('msg')}"
            f" (a field of the {cls.__name__} backend)"
        ) from None
    return {"backend": cls.__name__, **merged}
