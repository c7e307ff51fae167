"""Experiment sweeps: assay beside crystallize-ml 0.27 (install it from PyPI to compare).

    python bench/experiments.py

Measures, for a trivial operation run inline with caching:
- the cost per run of a cold sweep of 1,000 runs (planning, seeds, capture, record, one cache
  entry per run, the results index), beside crystallize's ``quick_experiment`` on the same
  1,000 runs (which keeps nothing on disk);
- the same sweep on a memory file system (``/dev/shm``, when there is one): the processor's
  share of the cost, without the disk's;
- the floors beside it: the operation alone (seeds, capture, record; nothing stored), the steps
  cache alone (a trivial Step), and the file system alone (one append of an entry to a segment
  file, and its share of the flush per chunk);
- resuming a completed 1,000-run sweep (a new Experiment, every run found complete);
- a status query of a 100,000-run results index;
- at scale, each in a process of its own so that its memory is its own: resuming a finished
  1,000,000-run sweep (its index written directly, without running a million runs), the
  ``assay status`` of that folder (the command's function in the process, and the command as a
  new process), a 20,000-run sweep and a 1,000,000-run sweep run in full (each run computed
  and persisted): their cost per run, the files they leave in the folder, and the memory they
  add to the driver.

Removing the previous sweep's folder is not part of any timing.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assay import Cached, Capture, Experiment, Step, grid, operation
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import plan

RUNS = 1_000
POINTS, REPLICATES = 100, 10
INDEX_RUNS = 100_000
FLUSH_EVERY = 250
SCALE_POINTS = 100_000  # × REPLICATES: a sweep of 1,000,000 runs
SWEEP_POINTS = 2_000  # × REPLICATES: a sweep of 20,000 runs


@operation
def trivial(params: dict[str, int], capture: Capture) -> None:
    capture.metric("y", params["x"] * 2)


def best(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] = lambda: None
) -> float:
    times = []
    for _ in range(repeat):
        setup()  # not timed
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def experiment(folder: Path) -> Experiment:
    return Experiment(
        "bench",
        trivial,
        grid(x=list(range(POINTS))),
        replicates=REPLICATES,
        folder=folder,
        progress=False,
    )


def assay_cold(root: Path) -> float:
    folder = root / "cold"
    return (
        best(lambda: experiment(folder).run(), 5, lambda: shutil.rmtree(folder, ignore_errors=True))
        / RUNS
    )


def memory_root() -> Path | None:
    """A folder on a memory file system, or None when the machine has none."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else None


def file_system_floor(root: Path) -> float:
    """Per entry cost of the system calls a cache entry needs, without any Python around them.

    One write appending the entry (a frame) to the process's segment file, and a flush of the
    segment once per ``FLUSH_EVERY`` entries, as a sweep's segment is sealed once per chunk (a
    1,000-run sweep runs in about four chunks).
    """
    entry = b"x" * 1200  # about a trivial run's record

    def once() -> None:
        segments = root / "floor-fs" / "segments"
        segments.mkdir(parents=True)
        fd = os.open(segments / "one.seg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            position = 0
            for i in range(RUNS):
                position += os.pwrite(fd, entry, position)
                if (i + 1) % FLUSH_EVERY == 0:  # the durability the cache owes, per chunk
                    os.fdatasync(fd)
        finally:
            os.close(fd)

    return best(once, 5, lambda: shutil.rmtree(root / "floor-fs", ignore_errors=True)) / RUNS


def operation_floor() -> float:
    """Per run cost of the operation alone: seeds, capture and its record, nothing stored."""
    return best(lambda: [trivial.run(params={"x": i}) for i in range(RUNS)], 5) / RUNS


class _Double(Step):
    def _run(self, value: int) -> int:
        return value * 2


def steps_floor(root: Path) -> float:
    """Per item cost of the steps layer's cache alone (a trivial Step, Cached backend)."""

    folder = root / "floor"
    return (
        best(
            lambda: list(_Double(infra=Cached(folder=folder)).run_many(range(RUNS))),
            5,
            lambda: shutil.rmtree(folder, ignore_errors=True),
        )
        / RUNS
    )


def assay_resume(root: Path) -> float:
    folder = root / "resume"
    experiment(folder).run()
    return best(lambda: experiment(folder).run(), 5)


def assay_status(root: Path) -> float:
    folder = root / "status"
    specs = plan(grid(x=list(range(INDEX_RUNS // 10))), replicates=10, seed=0)
    with ResultsIndex(folder) as index:
        index.plan(specs)
        index.store(
            Outcome(
                s.run_id, "failed" if i % 97 == 0 else "success", {"y": i}, 0.001, None, "h", None
            )
            for i, s in enumerate(specs)
        )

    def query() -> None:
        with ResultsIndex(folder, create=False) as index:
            counts = index.status_counts()
        assert sum(counts.values()) == INDEX_RUNS

    return best(query, 5)


def crystallize_experiment_per_run() -> float | None:
    """Crystallize's Experiment (one data source, one pipeline step), serial, 1,000 replicates."""
    try:
        from crystallize import Experiment as CExperiment
        from crystallize import Pipeline, SerialExecution, data_source, pipeline_step
    except ImportError:
        return None

    @data_source
    def source(ctx: object) -> int:
        return 1

    @pipeline_step()
    def step(data: int, ctx: object) -> dict[str, int]:
        return {"y": data * 2}

    def once() -> None:
        experiment = CExperiment(
            datasource=source(), pipeline=Pipeline([step()]), plugins=[SerialExecution()]
        )
        experiment.validate()
        experiment.run(replicates=RUNS)

    with tempfile.TemporaryDirectory() as tmp:  # it writes its run folders to the cwd
        here = os.getcwd()
        os.chdir(tmp)
        logging.disable(logging.INFO)  # it logs a line per replicate
        try:
            return best(once, 3) / RUNS
        finally:
            logging.disable(logging.NOTSET)
            os.chdir(here)


def crystallize_quick_per_run() -> float | None:
    """Crystallize's ``quick_experiment``: a loop over configs × replicates, nothing kept."""
    try:
        from crystallize import quick_experiment
    except ImportError:
        return None

    def fn(config: dict[str, int]) -> dict[str, int]:
        return {"y": config["x"] * 2}

    configs = {f"x{x}": {"x": x} for x in range(POINTS)}
    return best(lambda: quick_experiment(fn, configs, replicates=REPLICATES), 3) / RUNS


def _ratio(peer: float | None, mine: float) -> str:
    if peer is None:
        return "n/a"
    return f"{peer / mine:.1f}× faster" if peer >= mine else f"{mine / peer:.1f}× slower"


def _ms(value: float | None, digits: int = 3) -> str:
    return "not installed" if value is None else f"{value * 1e3:.{digits}f} ms"


# ---------------------------------------------------------------- at scale


def scale_experiment(folder: Path, points: int = SCALE_POINTS) -> Experiment:
    return Experiment(
        "scale",
        trivial,
        grid(x=range(points)),
        replicates=REPLICATES,
        folder=folder,
        progress=False,
    )


def finished_index(folder: Path) -> None:
    """Write the index of the 1,000,000-run sweep with every run a success.

    Running a million runs through the cache would take long and write a million entries; a
    resume and a status query read the index only. Its rows hold no record text (a trivial
    run's record is about 1 KB), and it is not noted as holding the whole sweep, as the
    ``run()`` that finishes a sweep notes it: the first resume compares the runs one by one (in
    SQLite) and notes it, the next ones read the note.
    """
    experiment = scale_experiment(folder)
    code = experiment.operation.code_hash
    with ResultsIndex(folder) as index:
        index.claim(experiment._stored_identity(), experiment._check_folder)
        index.plan(experiment.specs)
        index.store(
            Outcome(s.run_id, "success", {"y": 2 * s.params["x"]}, 1e-4, None, code, None)
            for s in experiment.specs
        )


def _rss_mb() -> float:
    """The resident memory of this process now (its peak where /proc is not there)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return _peak_mb()


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory of this process (or of its children, the largest)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KB here


def child_resume(folder: Path) -> dict[str, float]:
    """Resume the finished sweep: a new Experiment, every run found complete."""
    start = time.perf_counter()
    results = scale_experiment(folder).run()
    seconds = time.perf_counter() - start
    assert results.counts() == {"success": SCALE_POINTS * REPLICATES}
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def child_status(folder: Path) -> dict[str, float]:
    """The ``assay status`` command's function, called in this process (best of 5)."""
    from assay._cli import main as command

    def once() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            assert command(["status", str(folder)]) == 0

    return {"seconds": best(once, 5), "peak_mb": _peak_mb()}


def child_status_command(folder: Path) -> dict[str, float]:
    """``assay status`` as a new process, as typed in a shell (best of 5), and its memory."""
    argv = [sys.executable, "-m", "assay", "status", str(folder)]

    def once() -> None:
        subprocess.run(argv, check=True, capture_output=True)

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "import assay"], check=True)

    seconds = best(once, 5)
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(resource.RUSAGE_CHILDREN),
        "import": best(bare, 3),
    }


def child_sweep(folder: Path) -> dict[str, float]:
    """The memory a 20,000-run sweep adds to the driver: after it, and at its peak."""
    scale_experiment(folder / "warm", points=2).run()  # what is imported on first use
    gc.collect()
    before = _rss_mb()
    start = time.perf_counter()
    results = scale_experiment(folder / "sweep", points=SWEEP_POINTS).run()
    seconds = time.perf_counter() - start
    gc.collect()
    after = _rss_mb()
    assert results.counts() == {"success": SWEEP_POINTS * REPLICATES}
    return {
        "seconds": seconds,
        "growth_mb": after - before,
        "peak_mb": _peak_mb() - before,
        "files": _files(folder / "sweep"),
    }


def child_million(folder: Path) -> dict[str, float]:
    """A 1,000,000-run sweep run in full: every run computed and persisted, inline."""
    scale_experiment(folder / "warm", points=2).run()  # what is imported on first use
    gc.collect()
    before = _rss_mb()
    start = time.perf_counter()
    results = scale_experiment(folder / "million-run").run()
    seconds = time.perf_counter() - start
    assert results.counts() == {"success": SCALE_POINTS * REPLICATES}
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "growth_mb": _peak_mb() - before,
        "files": _files(folder / "million-run"),
    }


def _files(folder: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(folder))


CHILDREN: dict[str, Callable[[Path], dict[str, float]]] = {
    "resume": child_resume,
    "status": child_status,
    "status-command": child_status_command,
    "sweep": child_sweep,
    "million": child_million,
}


def in_child(what: str, folder: Path) -> dict[str, float]:
    """Measure ``what`` in a new process of this script: its memory is then its own."""
    argv = [sys.executable, __file__, "--child", what, str(folder)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def at_scale(root: Path) -> dict[str, dict[str, float]]:
    """Build the 1,000,000-run index, then measure resume, status and a 20,000-run sweep."""
    folder = root / "million"
    print("writing a finished 1,000,000-run index (about a minute)...", file=sys.stderr)
    start = time.perf_counter()
    finished_index(folder)
    built = time.perf_counter() - start
    figures = {
        "first resume": in_child("resume", folder),
        "resume": in_child("resume", folder),
        "status": in_child("status", folder),
        "status command": in_child("status-command", folder),
        "sweep": in_child("sweep", root / "sweep"),
    }
    if os.environ.get("ASSAY_BENCH_QUICK") != "1":  # a few minutes: every run is computed
        print("running a 1,000,000-run sweep in full (a few minutes)...", file=sys.stderr)
        figures["million"] = in_child("million", root / "million-run")
    figures["build"] = {"seconds": built}
    return figures


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def scale_table(figures: dict[str, dict[str, float]]) -> Table:
    runs = SCALE_POINTS * REPLICATES
    table = Table(title=f"Experiment sweeps at scale ({runs:,}-run index, trivial operation)")
    table.add_column("measure")
    table.add_column("assay", justify="right")
    table.add_column("target", justify="right")
    resume, first = figures["resume"], figures["first resume"]
    status, command = figures["status"], figures["status command"]
    sweep = figures["sweep"]
    table.add_row(f"resume a finished {runs:,}-run sweep", _s(resume["seconds"]), "≤ 3 s")
    table.add_row("  peak memory of that driver", _mb(resume["peak_mb"]), "≤ 300 MB")
    table.add_row(
        "  its first resume (the index not yet noted complete: runs compared in SQLite)",
        _s(first["seconds"]),
        "≤ 3 s",
    )
    table.add_row("  peak memory of that driver", _mb(first["peak_mb"]), "≤ 300 MB")
    table.add_row(
        "assay status of it, the command's function", _ms(status["seconds"], 1), "≤ 200 ms"
    )
    table.add_row("  peak memory of that process", _mb(status["peak_mb"]), "")
    table.add_row("assay status of it, as a new process", _ms(command["seconds"], 1), "≤ 200 ms")
    table.add_row("  of which Python importing assay", _ms(command["import"], 1), "")
    table.add_row("  peak memory of that process", _mb(command["peak_mb"]), "")
    sweep_runs = SWEEP_POINTS * REPLICATES
    table.add_row(
        f"memory a {sweep_runs:,}-run sweep adds to the driver", _mb(sweep["growth_mb"]), "≤ 40 MB"
    )
    table.add_row("  at its peak", _mb(sweep["peak_mb"]), "")
    table.add_row(
        "  the sweep's time (inline backend, every run computed)", _s(sweep["seconds"]), ""
    )
    table.add_row("  per run, fully persisted", _ms(sweep["seconds"] / sweep_runs), "≤ 0.05 ms")
    table.add_row("  files it leaves in its folder", f"{sweep['files']:,.0f}", "≤ 250")
    million = figures.get("million")
    if million is not None:
        table.add_row(
            f"a {runs:,}-run sweep run in full, per run",
            _ms(million["seconds"] / runs),
            "≤ 0.05 ms",
        )
        table.add_row("  its time", _s(million["seconds"]), "")
        table.add_row("  peak memory of that driver", _mb(million["peak_mb"]), "≤ 300 MB")
        table.add_row("  files it leaves in its folder", f"{million['files']:,.0f}", "≤ 250")
    table.add_row(
        f"writing the {runs:,}-run index (not a target: set-up)",
        _s(figures["build"]["seconds"]),
        "",
    )
    return table


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cold = assay_cold(root)
        fs_floor = file_system_floor(root)
        floor = steps_floor(root)
        op_floor = operation_floor()
        resume = assay_resume(root)
        status = assay_status(root)
        scale = at_scale(root)
    memory = memory_root()
    in_memory = None
    if memory is not None:
        try:
            in_memory = assay_cold(memory)
        finally:
            shutil.rmtree(memory, ignore_errors=True)
    peer = crystallize_experiment_per_run()
    quick = crystallize_quick_per_run()

    table = Table(title=f"Experiment sweeps: assay vs crystallize-ml ({RUNS:,} trivial runs)")
    table.add_column("measure")
    table.add_column("crystallize-ml 0.27", justify="right")
    table.add_column("assay", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("assay target", justify="right")
    table.add_row(
        "per trivial run, sequential (crystallize Experiment)",
        _ms(peer),
        _ms(cold),
        _ratio(peer, cold),
        "≤ 0.1 ms",
    )
    table.add_row(
        "per trivial run (crystallize quick_experiment, keeps nothing)",
        _ms(quick),
        _ms(cold),
        _ratio(quick, cold),
        "",
    )
    table.add_row(
        "  floor: the operation alone (seeds, capture, record; nothing stored)",
        "", _ms(op_floor), "", "",
    )  # fmt: skip
    table.add_row("  floor: the steps cache alone, per item (trivial Step)", "", _ms(floor), "", "")
    table.add_row(
        "  floor: the file system, one append to a segment and its share of the flush",
        "", _ms(fs_floor), "", "",
    )  # fmt: skip
    if in_memory is not None:
        table.add_row(
            "per trivial run on a memory file system (processor only)",
            _ms(peer),
            _ms(in_memory),
            _ratio(peer, in_memory),
            "≤ 0.1 ms",
        )
    table.add_row(
        f"resume a completed {RUNS:,}-run sweep", "no resume", _ms(resume, 1), "", "≤ 50 ms"
    )
    table.add_row(
        f"status of a {INDEX_RUNS:,}-run index", "no index", _ms(status, 1), "", "≤ 200 ms"
    )
    Console().print(table)
    print(
        "assay's cold runs include what crystallize does not do: seed bundles, a run record "
        "with provenance, one atomically written cache entry and an index row per run."
    )
    Console().print(scale_table(scale))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one measurement at scale, in a process of its own
        print(json.dumps(CHILDREN[sys.argv[2]](Path(sys.argv[3]))))
    else:
        main()
