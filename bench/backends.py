"""assay-backends against exca 0.6 backends: pools, per-item overhead and Slurm, side by side.

Run: ``python bench/backends.py`` (needs exca==0.6.0 and rich installed). The Slurm rows need
a Slurm cluster (``scripts/slurm/start.sh`` starts a single-node one; ``SLURM_CPUS=8`` gives it
the 8 job slots the cluster-scale rows are specified on); without ``sbatch`` they are reported
as skipped. Every figure is measured on this machine in this run.

The cluster-scale rows (issue targets, on an 8-slot cluster):

- a 48-run sweep of 2-s runs: at most 3 submissions, and a wall time within 1.5 times the ideal
  (48 x 2 s / 8 slots) plus one job's start-up;
- a 45-s run under a 2-minute time limit completes;
- one ``scancel``-led task of a 24-run sweep leaves the other 23 runs completed in the same call.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
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

from assay import Experiment, Results, explicit

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
# The step classes below travel to pool workers and Slurm jobs by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
# Slurm jobs import the experiments' operation (_cluster_ops) from this folder.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)

CPU_ITEMS = 8  # CPU-bound items, each about BURN_LOOPS iterations
BURN_LOOPS = 3_000_000
TINY_ITEMS = 400
SWEEP_ITEMS = 100
# Cluster-scale rows: a sweep of SCALE_RUNS runs of NAP_SECONDS each on SLOTS job slots.
SCALE_RUNS, NAP_SECONDS, SLOTS = 48, 2.0, 8
LONG_SECONDS, LONG_LIMIT_MIN = 45.0, 2
CANCEL_RUNS, CANCEL_SECONDS = 24, 4.0


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


class ExcaNap(exca_steps.Step):
    seconds: float = NAP_SECONDS

    def _run(self, value: int) -> int:
        time.sleep(self.seconds)
        return value


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


# ---------------------------------------------------------------- cluster scale


def slurm_slots() -> int:
    """Return the CPUs (job slots) the cluster's nodes offer, from ``sinfo``."""
    listing = subprocess.run(
        ["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True
    ).stdout.split()
    # allocated/idle/other/total per partition line: the total of the first.
    return int(listing[0].split("/")[3]) if listing else 0


def nap_sweep(folder: Path, runs: int, seconds: float, **backend: Any) -> Experiment:
    """An experiment of ``runs`` runs of ``_cluster_ops:nap`` sleeping ``seconds`` on Slurm."""
    space = explicit([{"seconds": seconds, "index": i} for i in range(runs)])
    return Experiment(
        "nap",
        "_cluster_ops:nap",
        space,
        backend={"backend": "Slurm", **backend},
        folder=folder,
        progress=False,
    )


def array_ids(folder: Path) -> set[str]:
    """Return the job ids of the submissions (arrays) whose tasks ran the sweep's runs."""
    jobs = {str(record.runtime.get("job")) for record in Results.load(folder).iter_records()}
    return {job.split("_")[0] for job in jobs if job != "None"}


def assay_scale_sweep() -> tuple[float, int, dict[str, int]]:
    """Seconds, submissions and status counts of the 48-run sweep, packed into SLOTS tasks."""
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        experiment = nap_sweep(folder, SCALE_RUNS, NAP_SECONDS, max_jobs=SLOTS)
        seconds = timed(experiment.run)
        counts = status_counts(folder)
        return seconds, len(array_ids(folder)), counts
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def status_counts(folder: Path) -> dict[str, int]:
    """Return the experiment's runs by status, as the index holds them."""
    return Results.load(folder).counts()


def exca_scale_sweep() -> float:
    """Seconds of exca's run_many over the same 48 naps, packed into SLOTS jobs."""
    return cold_run(ExcaNap, "Slurm", list(range(SCALE_RUNS)), max_jobs=SLOTS)


def assay_long_run() -> tuple[str, float]:
    """Status and seconds of one 45-s run under a 2-minute limit."""
    folder = Path(tempfile.mkdtemp(prefix="bench-long-"))
    try:
        experiment = nap_sweep(folder, 1, LONG_SECONDS, timeout_min=LONG_LIMIT_MIN)
        seconds = timed(experiment.run)
        (status,) = status_counts(folder)
        return status, seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exca_long_run() -> tuple[str, float]:
    """Outcome and seconds of exca's run of one 45-s item under a 2-minute limit."""
    folder = Path(tempfile.mkdtemp(prefix="bench-long-exca-"))
    step = ExcaNap(
        seconds=LONG_SECONDS,
        infra={"backend": "Slurm", "folder": folder, "timeout_min": LONG_LIMIT_MIN},
    )
    start = time.perf_counter()
    try:
        list(step.run_many([0]))
        outcome = "success"
    except Exception as error:
        outcome = f"error: {type(error).__name__}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return outcome, time.perf_counter() - start


def cancel_first_running(submitted_after: float) -> str | None:
    """Wait until a task of an array submitted after ``submitted_after`` runs; scancel it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = subprocess.run(
            ["squeue", "-h", "--array", "-t", "RUNNING", "-o", "%i %V"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
        for line in listing:
            parts = line.split()
            if len(parts) == 2 and "_" in parts[0] and _epoch(parts[1]) >= submitted_after:
                subprocess.run(["scancel", parts[0]], check=False)
                return parts[0]
        time.sleep(0.2)
    return None


def _epoch(stamp: str) -> float:
    try:
        return datetime.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


def assay_cancel_one() -> tuple[dict[str, int], str | None]:
    """Status counts of a 24-run sweep (one run per task) after one task was scancelled."""
    folder = Path(tempfile.mkdtemp(prefix="bench-cancel-"))
    try:
        experiment = nap_sweep(folder, CANCEL_RUNS, CANCEL_SECONDS, max_jobs=CANCEL_RUNS)
        killer = _Canceller()
        killer.start()
        experiment.run()
        killer.join()
        return status_counts(folder), killer.cancelled
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exca_cancel_one() -> tuple[int, str, str | None]:
    """Items exca cached in the same call, and how the call ended, after one scancel."""
    folder = Path(tempfile.mkdtemp(prefix="bench-cancel-exca-"))
    step = ExcaNap(
        seconds=CANCEL_SECONDS,
        infra={"backend": "Slurm", "folder": folder, "max_jobs": CANCEL_RUNS},
    )
    killer = _Canceller()
    killer.start()
    try:
        list(step.run_many(list(range(CANCEL_RUNS))))
        outcome = "returned"
    except Exception as error:
        outcome = f"raised {type(error).__name__}"
    killer.join()
    cached = sum(step.lookup(i).status == "success" for i in range(CANCEL_RUNS))
    shutil.rmtree(folder, ignore_errors=True)
    return cached, outcome, killer.cancelled


class _Canceller(threading.Thread):
    """Cancels the first task of a new array once it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.since = time.time() - 1
        self.cancelled: str | None = None

    def run(self) -> None:
        self.cancelled = cancel_first_running(self.since)


def cluster_rows(latency: float) -> list[tuple[str, str, str, str]]:
    """The cluster-scale rows: filling the cluster, a long run, one cancelled task."""
    rows = []
    slots = slurm_slots()
    ideal = SCALE_RUNS * NAP_SECONDS / SLOTS
    exca_seconds = exca_scale_sweep()
    assay_seconds, submissions, counts = assay_scale_sweep()
    rows.append(
        (
            f"Slurm, {SCALE_RUNS} runs of {NAP_SECONDS:g} s, {slots} slots, max_jobs={SLOTS} (s)",
            f"{exca_seconds:.1f}",
            f"{assay_seconds:.1f} ({counts.get('success', 0)} ok)",
            ratio(exca_seconds, assay_seconds),
        )
    )
    rows.append(
        (
            f"  ÷ (ideal {ideal:g} s + start-up {latency:.1f} s) (≤ 1.5); submissions (≤ 3)",
            f"{exca_seconds / (ideal + latency):.2f}; 1 (one run_many)",
            f"{assay_seconds / (ideal + latency):.2f}; {submissions}",
            "—",
        )
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # both long runs at once
        exca_long = pool.submit(exca_long_run)
        assay_status, assay_long = assay_long_run()
        exca_outcome, exca_long_seconds = exca_long.result()
    rows.append(
        (
            f"Slurm, one {LONG_SECONDS:g}-s run under a {LONG_LIMIT_MIN}-min limit",
            f"{exca_outcome} in {exca_long_seconds:.0f} s",
            f"{assay_status} in {assay_long:.0f} s",
            "—",
        )
    )
    exca_cached, exca_outcome, _ = exca_cancel_one()
    assay_counts, cancelled = assay_cancel_one()
    rows.append(
        (
            f"Slurm, {CANCEL_RUNS} runs, task {cancelled} scancelled: others done in the call",
            f"{exca_cached} of {CANCEL_RUNS - 1}; {exca_outcome}",
            f"{assay_counts.get('success', 0)} of {CANCEL_RUNS - 1}; "
            + ", ".join(f"{n} {s}" for s, n in sorted(assay_counts.items())),
            "—",
        )
    )
    return rows


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
        rows.extend(cluster_rows(latency_assay))

    table = Table(title=f"assay-backends vs exca 0.6 backends ({cpus} CPUs, this machine)")
    for column in ("measure", "exca 0.6.0", "assay-backends", "ratio (exca / assay)"):
        if column == "measure":
            table.add_column(column, min_width=40)
        else:
            table.add_column(column, justify="right", max_width=21)
    for row in rows:
        table.add_row(*row)
    console = Console(width=120)
    console.print(table)
    # The pools' figures depend on idle cores: say how busy the machine was.
    console.print(
        f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f} "
        f"on {cpus} CPUs; a busy machine lowers the ProcessPool speed-up."
    )


if __name__ == "__main__":
    main()
