"""assay-backends against exca 0.6 backends: pools, per-item overhead and Slurm, side by side.

Run: ``python bench/backends.py`` (needs exca==0.6.0 and rich installed). The Slurm rows need
a Slurm cluster (``scripts/slurm/start.sh`` starts a single-node one); without ``sbatch`` they
are reported as skipped. Every figure is measured on this machine in this run.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import assay_backends  # noqa: F401  (registers the backends)
import assay_steps
import cloudpickle
from exca import steps as exca_steps
from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
# The step classes below travel to pool workers and Slurm jobs by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CPU_ITEMS = 8  # CPU-bound items, each about BURN_LOOPS iterations
BURN_LOOPS = 3_000_000
TINY_ITEMS = 400
SWEEP_ITEMS = 100


def burn(value: int, loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i ^ value
    return total


class ExcaBurn(exca_steps.Step):
    loops: int = BURN_LOOPS

    def _run(self, value: int) -> int:
        return burn(value, self.loops)


class AssayBurn(assay_steps.Step):
    loops: int = BURN_LOOPS

    def _run(self, value: int) -> int:
        return burn(value, self.loops)


class ExcaTiny(exca_steps.Step):
    def _run(self, value: int) -> int:
        return value + 1


class AssayTiny(assay_steps.Step):
    def _run(self, value: int) -> int:
        return value + 1


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cold_run(step_class: type, backend: str, values: list[int], **fields: Any) -> float:
    """Seconds for a cold run_many over ``values`` in a fresh cache folder."""
    folder = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    try:
        step = step_class(infra={"backend": backend, "folder": folder, **fields})
        return timed(lambda: list(step.run_many(values)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


def ratio(exca: float | None, assay: float) -> str:
    if exca is None:
        return "—"
    return f"{exca / assay:,.2f}×"


def main() -> None:
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, str, str]] = []
    cpus = os.cpu_count() or 1
    values = list(range(CPU_ITEMS))

    # 1. CPU-bound items: ProcessPool against inline, for each library.
    inline_assay = best_of(2, lambda: cold_run(AssayBurn, "Cached", values))
    pool_assay = best_of(2, lambda: cold_run(AssayBurn, "ProcessPool", values))
    inline_exca = best_of(2, lambda: cold_run(ExcaBurn, "Cached", values))
    pool_exca = best_of(2, lambda: cold_run(ExcaBurn, "ProcessPool", values))
    rows.append(
        (
            f"{CPU_ITEMS} CPU-bound items, inline (Cached) (s)",
            f"{inline_exca:.2f}",
            f"{inline_assay:.2f}",
            ratio(inline_exca, inline_assay),
        )
    )
    rows.append(
        (
            f"same, ProcessPool on {cpus} cores (s)",
            f"{pool_exca:.2f}",
            f"{pool_assay:.2f}",
            ratio(pool_exca, pool_assay),
        )
    )
    rows.append(
        (
            "ProcessPool speed-up over inline (target ≥ 1.8× on 2 cores)",
            f"{inline_exca / pool_exca:.2f}×",
            f"{inline_assay / pool_assay:.2f}×",
            "—",
        )
    )

    # 2. Per-item overhead of the pools on tiny items (cold run, per item).
    tiny = list(range(TINY_ITEMS))
    for backend in ("Cached", "ThreadPool", "ProcessPool"):
        assay = best_of(2, lambda b=backend: cold_run(AssayTiny, b, tiny)) / TINY_ITEMS
        exca = best_of(2, lambda b=backend: cold_run(ExcaTiny, b, tiny)) / TINY_ITEMS
        rows.append(
            (
                f"{TINY_ITEMS} tiny items, {backend}, per item (ms)",
                f"{exca * 1e3:.3f}",
                f"{assay * 1e3:.3f}",
                ratio(exca, assay),
            )
        )

    # 3. Slurm: one job's submit-to-result latency, and a sweep packed into 4 jobs.
    if shutil.which("sbatch") is None:
        rows.append(("Slurm rows", "skipped: no sbatch", "skipped: no sbatch", "—"))
    else:
        latency_assay = best_of(3, lambda: cold_run(AssayTiny, "Slurm", [1]))
        latency_exca = best_of(3, lambda: cold_run(ExcaTiny, "Slurm", [1]))
        rows.append(
            (
                "Slurm, one item: submit → result (s)",
                f"{latency_exca:.2f}",
                f"{latency_assay:.2f}",
                ratio(latency_exca, latency_assay),
            )
        )
        sweep = list(range(SWEEP_ITEMS))
        sweep_assay = cold_run(AssayTiny, "Slurm", sweep, max_jobs=4)
        sweep_exca = cold_run(ExcaTiny, "Slurm", sweep, max_jobs=4)
        rows.append(
            (
                f"Slurm, {SWEEP_ITEMS} items packed into 4 jobs (s)",
                f"{sweep_exca:.2f}",
                f"{sweep_assay:.2f}",
                ratio(sweep_exca, sweep_assay),
            )
        )

    table = Table(title=f"assay-backends vs exca 0.6 backends ({cpus} CPUs, this machine)")
    for column in ("measure", "exca 0.6.0", "assay-backends", "ratio (exca / assay)"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in rows:
        table.add_row(*row)
    console = Console(width=110)
    console.print(table)
    # The pools' figures depend on idle cores: say how busy the machine was.
    console.print(
        f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f} "
        f"on {cpus} CPUs; a busy machine lowers the ProcessPool speed-up."
    )


if __name__ == "__main__":
    main()
