"""assay-steps against exca 0.6 ``exca.steps``: cache engine costs, side by side.

Run: ``python bench/steps_vs_exca.py`` (needs exca==0.6.0 and rich installed).
Every figure is measured on this machine in this run; nothing is extrapolated.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import assay_steps
import numpy as np
from exca import steps as exca_steps
from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

BIG = np.random.default_rng(0).random(100 * 2**20 // 8)  # 100 MB of float64


class ExcaTiny(exca_steps.Step):
    k: int = 1

    def _run(self, value: int) -> int:
        return value + self.k


class AssayTiny(assay_steps.Step):
    k: int = 1

    def _run(self, value: int) -> int:
        return value + self.k


class ExcaBig(exca_steps.Step):
    def _run(self, value: int) -> np.ndarray:
        return BIG


class AssayBig(assay_steps.Step):
    def _run(self, value: int) -> np.ndarray:
        return BIG


def infra(folder: Path, **options: Any) -> dict[str, Any]:
    return {"backend": "Cached", "folder": folder, **options}


def timed(action: Callable[[], Any], collect: bool = True) -> float:
    if collect:  # not before sub-millisecond calls: a full collection leaves the CPU caches cold
        gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_of(action: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(action) for _ in range(repeats))


class Scratch:
    """A fresh folder per measurement, removed afterwards."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="steps-bench-"))
        self.count = 0

    def new(self) -> Path:
        # Settle the disk: a measurement must not pay for the previous one's pending writes.
        os.sync()
        self.count += 1
        return self.root / f"run{self.count}"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


CPU_TIMES: dict[tuple[str, int], float] = {}


def cold_run_many(cls: type, n: int, scratch: Scratch, repeats: int = 1) -> float:
    times, cpu = [], []
    for _ in range(repeats):  # the median of several fresh folders: the disk is shared
        step = cls(infra=infra(scratch.new()))
        start = time.process_time()
        times.append(timed(lambda step=step: list(step.run_many(range(n)))))
        cpu.append(time.process_time() - start)
    # CPU time of this process (user + system): what the library costs, apart from waiting
    # for a disk or CPUs shared with other programs.
    CPU_TIMES[cls.__name__, n] = statistics.median(cpu)
    return statistics.median(times)


def warm_per_item(cls: type, n: int, scratch: Scratch) -> float:
    step = cls(infra=infra(scratch.new()))
    list(step.run_many(range(n)))
    return median_of(lambda: list(step.run_many(range(n))), 5) / n


def warm_new_instance_per_item(cls: type, n: int, scratch: Scratch) -> float:
    """Warm run_many of ``n`` cached items by a new instance (built outside the timing)."""
    folder = scratch.new()
    list(cls(infra=infra(folder)).run_many(range(n)))
    steps = [cls(infra=infra(folder)) for _ in range(5)]
    times = [timed(lambda s=s: list(s.run_many(range(n)))) for s in steps]
    return statistics.median(times) / n


def hit_new_instance(cls: type, scratch: Scratch) -> float:
    folder = scratch.new()
    cls(infra=infra(folder)).run(3)
    steps = [cls(infra=infra(folder)) for _ in range(51)]  # built outside the timing
    times = [timed(lambda s=s: s.run(3), collect=False) for s in steps]
    return statistics.median(times)


def array_uid(kind: str) -> float:
    if kind == "exca":
        from exca.steps import identity

        step = ExcaTiny()
        return median_of(lambda: identity.materialize_uid(step, BIG), 5)
    step = AssayTiny()
    return median_of(lambda: step._item_uid(BIG), 5)


def array_write_read(cls: type, scratch: Scratch, **options: Any) -> tuple[float, float]:
    writes, reads = [], []
    for _ in range(3):
        folder = scratch.new()
        writes.append(timed(lambda f=folder: cls(infra=infra(f, **options)).run(0)))
        readers = [cls(infra=infra(folder)) for _ in range(5)]
        reads.extend(timed(lambda r=r: np.asarray(r.run(0))[-1]) for r in readers)
    return statistics.median(writes), statistics.median(reads)


def _ratio(exca: float, assay: float) -> str:
    if exca >= assay:
        return f"{exca / assay:,.1f}× faster"
    return f"{assay / exca:,.1f}× slower"


def main() -> None:
    console = Console()
    scratch = Scratch()
    rows: list[tuple[str, str, str, str]] = []
    try:

        def add(name: str, exca: float | None, assay: float, unit: str, scale: float) -> None:
            ex = "—" if exca is None else f"{exca * scale:,.2f} {unit}"
            ratio = "—" if exca is None else _ratio(exca, assay)
            rows.append((name, ex, f"{assay * scale:,.2f} {unit}", ratio))
            console.log(f"{name}: exca {ex}, assay {assay * scale:,.3f} {unit}")

        exca_2k = cold_run_many(ExcaTiny, 2000, scratch)
        assay_2k = cold_run_many(AssayTiny, 2000, scratch, repeats=3)
        add("cold run_many, 2,000 tiny items", exca_2k, assay_2k, "s", 1)
        cpu_2k = CPU_TIMES["ExcaTiny", 2000], CPU_TIMES["AssayTiny", 2000]
        add("  … CPU time of the process", *cpu_2k, "s", 1)
        assay_1k = cold_run_many(AssayTiny, 1000, scratch, repeats=5)
        assay_10k = cold_run_many(AssayTiny, 10000, scratch, repeats=3)
        add("cold run_many, 1,000 items (assay, median of 5)", None, assay_1k, "s", 1)
        add("cold run_many, 10,000 items (assay, median of 3)", None, assay_10k, "s", 1)
        add("  … CPU time of the process", None, CPU_TIMES["AssayTiny", 10000], "s", 1)
        rows.append(
            ("assay 10k / 1k time ratio (linear: ≈10)", "—", f"{assay_10k / assay_1k:.1f}", "—")
        )
        add(
            "warm hits per item (2,000 items)",
            warm_per_item(ExcaTiny, 2000, scratch),
            warm_per_item(AssayTiny, 2000, scratch),
            "µs",
            1e6,
        )
        add(
            "warm run_many of 2,000 hits, new instance, per item",
            warm_new_instance_per_item(ExcaTiny, 2000, scratch),
            warm_new_instance_per_item(AssayTiny, 2000, scratch),
            "µs",
            1e6,
        )
        add(
            "warm hits per item (10,000 items, assay)",
            None,
            warm_per_item(AssayTiny, 10000, scratch),
            "µs",
            1e6,
        )
        add(
            "run() hit from a new instance",
            hit_new_instance(ExcaTiny, scratch),
            hit_new_instance(AssayTiny, scratch),
            "ms",
            1e3,
        )
        add("uid of a 100 MB array input", array_uid("exca"), array_uid("assay"), "ms", 1e3)
        exca_write, exca_read = array_write_read(ExcaBig, scratch)
        assay_write, assay_read = array_write_read(AssayBig, scratch)
        add("write a 100 MB array result (assay: durable)", exca_write, assay_write, "ms", 1e3)
        assay_write_off, _ = array_write_read(AssayBig, scratch, fsync="off")
        add(
            "write a 100 MB array result (assay: fsync='off')",
            exca_write,
            assay_write_off,
            "ms",
            1e3,
        )
        add("read it back (memory-mapped)", exca_read, assay_read, "ms", 1e3)
    finally:
        scratch.close()

    table = Table(title="assay-steps vs exca 0.6 (Cached backend, this machine)")
    for column in ("measure", "exca 0.6.0", "assay-steps", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
