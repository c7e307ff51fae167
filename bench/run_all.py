"""Run every benchmark side by side with its peer library and write ``docs/benchmarks.md``.

Usage (from the repository root)::

    python3 -m hatch run bench:all

Each ``bench/*.py`` script (except this one) runs in its own process, in the benchmark
environment where the peer libraries are installed from PyPI at pinned versions; its printed
tables go into the report under the script's name, after a description of the machine.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPORT = BENCH.parent / "docs" / "benchmarks.md"
PEERS = [
    "hyperparameter", "crystallize-ml", "exca", "joblib", "submitit", "numpy", "pydantic",
    "optuna", "hydra-core", "hydra-optuna-sweeper",
]  # fmt: skip


def machine_description() -> list[str]:
    lines = [
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {_memory()}",
        f"- CPU: {_cpu_model()}",
        f"- system: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
    ]
    versions = ", ".join(f"{name} {_version(name)}" for name in PEERS)
    lines.append(f"- libraries: {versions}")
    return lines


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        return f"{kib / 2**20:.0f} GiB RAM"
    return "unknown RAM"


def run_script(script: Path) -> tuple[str, float, int]:
    started = time.perf_counter()
    env = {**os.environ, "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"}
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=False
    )
    output = completed.stdout.rstrip()
    if completed.returncode != 0:
        output += f"\n\nFAILED with exit code {completed.returncode}:\n{completed.stderr[-3000:]}"
    return output, time.perf_counter() - started, completed.returncode


def main() -> int:
    # Modules named with a leading "_" are helpers of the benchmarks, not benchmarks.
    scripts = sorted(
        p for p in BENCH.glob("*.py") if p.name != Path(__file__).name and p.name[0] != "_"
    )
    sections = []
    failures = 0
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        output, seconds, code = run_script(script)
        failures += code != 0
        print(output, flush=True)
        sections.append(
            f"## {script.stem}\n\n`python bench/{script.name}` ({seconds:.0f} s)\n\n"
            f"```text\n{output}\n```\n"
        )
    REPORT.write_text(
        "# Benchmarks\n\n"
        "Every figure below comes from one run of `python3 -m hatch run bench:all`,\n"
        "which runs each benchmark of `bench/` beside the peer library it compares with,\n"
        "on the machine described here. Ratios above 1 mean assay is faster.\n"
        "Rerun the command to reproduce them on yours.\n\n"
        "## Machine\n\n" + "\n".join(machine_description()) + "\n\n" + "\n".join(sections),
        encoding="utf-8",
    )
    print(f"wrote {REPORT.relative_to(BENCH.parent)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
