"""Adaptive search: assay's ``search`` beside plain Optuna, and Hydra's Optuna sweeper.

    python bench/search.py

The study: a noisy 5-d Rosenbrock function (``_search_ops.py``: Gaussian noise of sd 1, drawn
from a generator seeded by the point, so every tool evaluates the same function) over
[-2, 2]^5, 100 trials, Optuna's TPE sampler. Measures, side by side:

- the best value found, over 5 seeds: plain Optuna (``TPESampler(seed)``, ask/tell in batches
  of 2 told in trial order, in memory) and assay (``search(parallel=2)`` on
  ``ProcessPool(max_jobs=2)``, which reseeds TPE from (seed, trial number) at each ask); the
  verdict "within noise" when the difference of the means is within the larger of the two
  standard deviations;
- the overhead per trial: a trivial objective, inline, one trial at a time; assay's seconds
  per trial beside Optuna's own ask + tell on the storage assay keeps its study in (a journal
  file) with the same sampler, and an in-memory study (the floor); on the temporary folder's
  disk and on a memory file system; best of 3 searches of 100 trials;
- where assay's time per trial goes: ask, run (cache, worker, record), plan and index, tell;
  and the journal appends and file syncs per trial;
- a search (20-ms runs) killed 3 times (SIGKILL to the driver and its pool) at random moments
  (seeded), then run to its end: the trials in the journal at each kill and at the end, and
  every computed run counted (the objective appends a line to a file): computed twice, and
  whether those were runs in flight at a kill;
- Hydra's Optuna sweeper (basic launcher: sequential, batches of its default ``n_jobs=2``)
  on the same study: its time for 100 trials beside assay's, each a new process, and whether
  a sweep killed once resumes with its ``storage`` set (by default it keeps no storage).
  Skipped when it is not installed.

Removing a search's folder is not part of any timing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

import assay
from assay import Experiment, uniform
from assay._study import JOURNAL

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # the operations' module, here and in every worker
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))

import _search_ops as ops  # noqa: E402

if hasattr(assay, "search"):
    search = assay.search
else:
    from assay._search import search

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.disable(logging.WARNING)

TRIALS = 100
SEEDS = range(5)
PARALLEL = 2
POOL = {"backend": "ProcessPool", "max_jobs": PARALLEL}
REPEATS = 3  # overhead: best of REPEATS searches
KILL_SEED = 19  # where the kills land
KILLS = 3  # times assay's search is killed before it is run to its end
SLEEP = 0.02  # seconds each run of the kill-and-resume rows takes


def dists() -> dict[str, Any]:
    return {f"x{i}": uniform(ops.LOW, ops.HIGH) for i in range(ops.DIMS)}


def optuna_space() -> dict[str, Any]:
    float_dist = optuna.distributions.FloatDistribution
    return {f"x{i}": float_dist(ops.LOW, ops.HIGH) for i in range(ops.DIMS)}


def sampler(kind: str, seed: int) -> Any:
    samplers = optuna.samplers
    return samplers.TPESampler(seed=seed) if kind == "tpe" else samplers.RandomSampler(seed=seed)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ---------------------------------------------------------------- best value


def plain_optuna_best(seed: int) -> tuple[float, float, int]:
    """Seconds and best value of plain Optuna: ask 2, tell 2 in trial order, in memory."""

    def study() -> float:
        st = optuna.create_study(sampler=sampler("tpe", seed))
        space = optuna_space()
        for _ in range(TRIALS // PARALLEL):
            batch = [st.ask(space) for _ in range(PARALLEL)]
            for trial in batch:
                st.tell(trial, ops.noisy_rosenbrock(trial.params))
        return float(st.best_value)

    seconds, best = timed(study)
    return seconds, best, 0


@contextlib.contextmanager
def forks_counted() -> Iterator[list[int]]:
    """Count the processes this one forks (a process pool's workers) while the block runs."""
    fork, count = os.fork, [0]

    def counted() -> int:
        count[0] += 1
        return fork()

    os.fork = counted
    try:
        yield count
    finally:
        os.fork = fork


def assay_best(root: Path, seed: int) -> tuple[float, float, int]:
    """Seconds, best value and workers started of assay's search on a pool, ``parallel=2``."""
    folder = root / f"best-{seed}"
    space = search(TRIALS, metric="value", parallel=PARALLEL, seed=seed, **dists())
    experiment = Experiment(
        "rosenbrock", "_search_ops:noisy", space, folder=folder, backend=POOL, seed=seed,
        progress=False,
    )  # fmt: skip
    with forks_counted() as forks:
        seconds, results = timed(experiment.run)
    assert results.counts() == {"success": TRIALS}, results.counts()
    best = float(results.best().metrics["value"])  # read from the folder
    shutil.rmtree(folder)
    return seconds, best, forks[0]


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def quality(root: Path) -> dict[str, list[tuple[float, float, int]]]:
    return {
        "optuna": [plain_optuna_best(seed) for seed in SEEDS],
        "assay": [assay_best(root, seed) for seed in SEEDS],
    }


def quality_table(figures: dict[str, list[tuple[float, float, int]]]) -> tuple[Table, str]:
    plain = [best for _, best, _ in figures["optuna"]]
    mine = [best for _, best, _ in figures["assay"]]
    table = Table(
        title=f"Best value after {TRIALS} trials, noisy 5-d Rosenbrock, TPE, seeds "
        f"{SEEDS.start}–{SEEDS.stop - 1}"
    )
    table.add_column("measure")
    table.add_column(f"Optuna {optuna.__version__}, ask/tell by 2", justify="right")
    table.add_column("assay, ProcessPool(2), parallel=2", justify="right")
    table.add_column("target", justify="right")
    table.add_row("best value, mean ± sd", mean_sd(plain), mean_sd(mine), "within noise")
    table.add_row(
        "best value per seed",
        ", ".join(f"{v:.1f}" for v in plain),
        ", ".join(f"{v:.1f}" for v in mine),
        "",
    )
    t_plain = statistics.mean(s for s, _, _ in figures["optuna"])
    t_mine = statistics.mean(s for s, _, _ in figures["assay"])
    table.add_row(f"seconds for {TRIALS} trials, mean", f"{t_plain:.2f} s", f"{t_mine:.2f} s", "")
    table.add_row(
        "  per trial", f"{t_plain / TRIALS * 1e3:.1f} ms", f"{t_mine / TRIALS * 1e3:.1f} ms", ""
    )
    forks = statistics.mean(n for _, _, n in figures["assay"])
    table.add_row("  pool worker processes started per search", "none", f"{forks:.0f}", "")
    gap = abs(statistics.mean(mine) - statistics.mean(plain))
    spread = max(statistics.stdev(mine), statistics.stdev(plain))
    verdict = f"difference of the means {gap:.2f}, larger sd {spread:.2f}: " + (
        "within noise" if gap <= spread else "NOT within noise"
    )
    return table, verdict


# ---------------------------------------------------------------- overhead per trial


def assay_per_trial(root: Path, kind: str, seed: int) -> float:
    folder = root / f"overhead-{kind}-{seed}"
    space = search(TRIALS, metric="value", parallel=1, sampler=kind, seed=seed, **dists())
    experiment = Experiment(
        "trivial", "_search_ops:trivial", space, folder=folder, seed=seed, progress=False
    )
    seconds, results = timed(experiment.run)
    assert results.counts() == {"success": TRIALS}, results.counts()
    shutil.rmtree(folder)
    return seconds / TRIALS


def optuna_per_trial(root: Path | None, kind: str, seed: int) -> float:
    """Optuna's ask + tell per trial, in a journal file under ``root`` (None: in memory)."""
    folder = None if root is None else root / f"journal-{kind}-{seed}"

    def study() -> None:
        storage = None
        if folder is not None:
            folder.mkdir()
            storage = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
        st = optuna.create_study(storage=storage, sampler=sampler(kind, seed))
        space = optuna_space()
        for _ in range(TRIALS):
            trial = st.ask(space)
            st.tell(trial, trial.params["x0"])

    seconds, _ = timed(study)
    if folder is not None:
        shutil.rmtree(folder)
    return seconds / TRIALS


def overhead(root: Path, kind: str) -> dict[str, float]:
    """Best of REPEATS searches of TRIALS trials, each way (interleaved: same load)."""
    runs: dict[str, list[float]] = {"memory": [], "journal": [], "assay": []}
    for seed in range(REPEATS):
        runs["memory"].append(optuna_per_trial(None, kind, seed))
        runs["journal"].append(optuna_per_trial(root, kind, seed))
        runs["assay"].append(assay_per_trial(root, kind, seed))
    return {**{name: min(values) for name, values in runs.items()}, "sync": durable_write(root)}


def durable_write(root: Path, times: int = 50) -> float:
    """Median seconds of one durable small write on ``root``'s file system.

    A trial's record is made durable (written, synced, renamed into place) before the
    trial is told, so that a killed driver loses no trial: assay's cache seals a batch's
    entries with one such write, which Optuna alone does not make. Shown beside the
    overhead to tell the file system's part in it from assay's own.
    """
    folder = Path(tempfile.mkdtemp(dir=root))
    spent = []
    for i in range(times):
        began = time.perf_counter()
        temporary = folder / f".entry.{i}.tmp"
        with open(temporary, "wb") as file:
            file.write(b"x" * 1024)
            file.flush()
            os.fdatasync(file.fileno())
        os.replace(temporary, folder / f"entry.{i}")
        spent.append(time.perf_counter() - began)
    shutil.rmtree(folder)
    return statistics.median(spent)


def memory_root() -> Path | None:
    """A folder on a memory file system, or None when the machine has none."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else None


def overhead_table(rows: list[tuple[str, str, dict[str, float]]]) -> Table:
    table = Table(
        title=f"Search overhead per trial: trivial objective, inline, one trial at a time "
        f"(best of {REPEATS} × {TRIALS} trials)"
    )
    for name in ("file system", "sampler", "Optuna in memory (floor)", "Optuna journal file"):
        table.add_column(name, justify="left" if name in ("file system", "sampler") else "right")
    table.add_column("assay", justify="right")
    table.add_column("assay − journal", justify="right")
    table.add_column("one synced 1-KB write", justify="right")
    table.add_column("target", justify="right")
    for where, kind, f in rows:
        extra = f["assay"] - f["journal"]
        table.add_row(
            where, kind, _ms(f["memory"]), _ms(f["journal"]), _ms(f["assay"]), _ms(extra),
            _ms(f["sync"]), "≤ 2 ms" + (" ok" if extra <= 2e-3 else " MISSED"),
        )  # fmt: skip
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


# ---------------------------------------------------------------- where the time goes


@contextlib.contextmanager
def phase_clock() -> Iterator[dict[str, float]]:
    """Time the phases of assay's search loop, and count journal appends and file syncs."""
    from assay._experiment import Experiment as Exp
    from assay._index import ResultsIndex
    from assay._study import SearchStudy

    spent: dict[str, float] = Counter()
    patched: list[tuple[Any, str, Any]] = []

    def clock(owner: Any, name: str, phase: str, count_only: bool = False) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            spent[f"{phase} calls"] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if not count_only:
                    spent[phase] += time.perf_counter() - start

        patched.append((owner, name, original))
        setattr(owner, name, wrapper)

    clock(SearchStudy, "next_batch", "ask")
    clock(Exp, "_execute", "run")
    clock(ResultsIndex, "plan", "plan")
    clock(SearchStudy, "tell", "tell")
    clock(optuna.study.Study, "ask", "optuna ask")
    clock(optuna.study.Study, "tell", "optuna tell")
    clock(JournalFileBackend, "append_logs", "journal append", count_only=True)
    clock(os, "fsync", "fsync", count_only=True)
    clock(os, "fdatasync", "fdatasync", count_only=True)
    try:
        yield spent
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def breakdown(root: Path) -> dict[str, dict[str, float]]:
    """Per-trial phase times of assay and of plain Optuna's journal (the fastest of REPEATS)."""
    assay_per_trial(root, "tpe", 99)  # warm: imports, code hashes
    figures: dict[str, list[dict[str, float]]] = {"assay": [], "optuna": []}
    for seed in range(REPEATS):
        with phase_clock() as mine:
            mine["total"] = assay_per_trial(root, "tpe", seed) * TRIALS
        with phase_clock() as plain:
            plain["total"] = optuna_per_trial(root, "tpe", seed) * TRIALS
        figures["assay"].append(dict(mine))
        figures["optuna"].append(dict(plain))
    return {name: min(runs, key=lambda f: f["total"]) for name, runs in figures.items()}


def breakdown_table(splits: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="Where assay's time per trial goes (TPE, inline, one trial at a time)")
    table.add_column("part of the search loop")
    for where in splits:
        table.add_column(where, justify="right")

    def row(label: str, value: Callable[[dict[str, float], dict[str, float]], str]) -> None:
        table.add_row(label, *(value(f["assay"], f["optuna"]) for f in splits.values()))

    def share(phase: str) -> Callable[[dict[str, float], dict[str, float]], str]:
        return lambda m, _: f"{_ms(m[phase] / TRIALS)} ({m[phase] / m['total']:.0%})"

    def calls(what: str) -> Callable[[dict[str, float], dict[str, float]], str]:
        key = f"{what} calls"
        return lambda m, o: f"{m.get(key, 0) / TRIALS:.2f} ({o.get(key, 0) / TRIALS:.2f})"

    row("ask: next_batch", share("ask"))
    row("  of it, Optuna's Study.ask", share("optuna ask"))
    row("run: the batch's sweep (cache, worker, record, index)", share("run"))
    row("plan: the batch's runs into the index", share("plan"))
    row("tell: SearchStudy.tell", share("tell"))
    row("  of it, Optuna's Study.tell", share("optuna tell"))
    phases = ("ask", "run", "plan", "tell")
    row(
        "the rest (run ids, index reads)",
        lambda m, _: _ms((m["total"] - sum(m[k] for k in phases)) / TRIALS),
    )
    row("assay in all", lambda m, _: _ms(m["total"] / TRIALS))
    row("plain Optuna ask + tell on a journal file", lambda _, o: _ms(o["total"] / TRIALS))
    row("  of it, Study.ask", lambda _, o: _ms(o["optuna ask"] / TRIALS))
    for what in ("journal append", "fsync", "fdatasync"):
        row(f"{what} calls per trial: assay (Optuna alone)", calls(what))
    return table


# ---------------------------------------------------------------- kill and resume


def kill_experiment(folder: Path) -> Experiment:
    space = search(
        TRIALS, metric="value", parallel=PARALLEL, seed=KILL_SEED, sleep=SLEEP, **dists()
    )
    return Experiment(
        "killed", "_search_ops:noisy", space, folder=folder, backend=POOL, seed=KILL_SEED,
        progress=False,
    )  # fmt: skip


def driver(folder: Path) -> None:
    """The killed driver's process: run the search (it is killed, or it finishes)."""
    results = kill_experiment(folder).run()
    print(results.counts())


def log_points(log: Path) -> list[str]:
    """The points of the computed runs, one per whole line of the log (time stripped)."""
    if not log.exists():
        return []
    *whole, _partial = log.read_text().split("\n")  # a line being written is not counted yet
    return [line.split(" ", 1)[1] for line in whole]


def point_of(params: dict[str, Any]) -> str:
    """The point as the log writes it (a trial killed while it was being asked: partial)."""
    return " ".join(repr(float(params[f"x{i}"])) for i in range(ops.DIMS) if f"x{i}" in params)


def kill_when(process: subprocess.Popen[bytes], log: Path, lines: int, delay: float) -> float:
    """SIGKILL the process's group once ``log`` has ``lines`` lines and ``delay`` more.

    Return the seconds from the start to the kill, or -1 when the process ended first.
    """
    start = time.perf_counter()
    while len(log_points(log)) < lines:
        if process.poll() is not None:
            return -1.0
        time.sleep(0.002)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its pool's workers
    process.wait()
    return time.perf_counter() - start


def journal_trials(path: Path) -> list[Any]:
    storage = JournalStorage(JournalFileBackend(str(path)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def states(trials: list[Any]) -> Counter[str]:
    return Counter(t.state.name.lower() for t in trials)


def kill_points(rng: random.Random, kills: int) -> list[tuple[int, float]]:
    """When to kill: after a random number of computed runs, and a random delay (seconds)."""
    lines = sorted(rng.sample(range(10, TRIALS - 10), kills))
    return [(n, rng.uniform(0.0, 0.05)) for n in lines]


def kill_and_rerun(
    argv: list[str],
    cwd: Path,
    log: Path,
    trials: Callable[[], list[Any]],
    points: list[tuple[int, float]],
) -> dict[str, Any]:
    """Start ``argv``, kill it at each of ``points``, then run it to its end; count all.

    A driver that ends by itself before its kill (it failed to resume) ends the kills; its
    error, or the last run's, is kept as ``"failed"``.
    """
    env = {**os.environ, ops.LOG: str(log)}
    kills: list[dict[str, Any]] = []
    figures: dict[str, Any] = {"kills": kills, "failed": None}
    for lines, delay in points:
        with open(cwd / "killed.err", "wb") as err:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=err, stderr=err, start_new_session=True
            )
            after = kill_when(process, log, lines, delay)
        if after < 0:
            figures["failed"] = last_line((cwd / "killed.err").read_text())
            break
        kills.append(at_kill(trials(), log_points(log), after))
    if figures["failed"] is None:
        figures["rerun seconds"], done = timed(
            lambda: subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        )
        if done.returncode != 0:
            figures["failed"] = last_line(done.stderr.decode())
    computed = Counter(log_points(log))
    for kill in kills:  # runs computed before a kill and computed again after it
        kill["again"] = sum(computed[p] > kill["counts"][p] for p in kill["in flight computed"])
    in_flight = set().union(*(kill["in flight"] for kill in kills))
    final = trials()
    return {
        **figures,
        "final": states(final),
        "final trials": len(final),
        "computed": sum(computed.values()),
        "distinct": len(computed),
        "duplicates": sum(n - 1 for n in computed.values()),
        "duplicates in flight": sum(n - 1 for p, n in computed.items() if p in in_flight),
    }


def at_kill(trials: list[Any], computed: list[str], after: float) -> dict[str, Any]:
    """The study and the computed runs at a kill: trials asked but not told, and their runs."""
    running = [t for t in trials if t.state == TrialState.RUNNING]
    in_flight = {point_of(t.params) for t in running}
    return {
        "after": after,
        "computed": len(computed),
        "counts": Counter(computed),
        "states": states(trials),
        "partial": sum(len(t.params) < ops.DIMS for t in running),  # killed while asked
        "in flight": in_flight,
        "in flight computed": in_flight & set(computed),
    }


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


def kill_and_resume(root: Path, rng: random.Random) -> dict[str, Any]:
    """Kill assay's search KILLS times at random moments, run it to its end; count all."""
    folder = root / "killed"
    folder.mkdir()
    argv = [sys.executable, __file__, "--driver", str(folder / "experiment")]
    return kill_and_rerun(
        argv,
        folder,
        folder / "runs.log",
        lambda: journal_trials(folder / "experiment" / JOURNAL),
        kill_points(rng, KILLS),
    )


def kill_table(mine: dict[str, Any], hydra: dict[str, Any] | None) -> Table:
    table = Table(
        title=f"Killed (SIGKILL) at random moments, then run to the end: {TRIALS} trials, "
        f"{SLEEP * 1e3:.0f}-ms runs"
    )
    table.add_column("measure")
    table.add_column(f"assay, ProcessPool(2), parallel=2, {KILLS} kills", justify="right")
    table.add_column("Hydra sweeper, storage set, 1 kill", justify="right")
    table.add_column("target", justify="right")

    def row(label: str, value: Callable[[dict[str, Any]], str], target: str = "") -> None:
        table.add_row(label, value(mine), value(hydra) if hydra else "not installed", target)

    def each(value: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        return lambda f: "; ".join(value(kill) for kill in f["kills"])

    row(
        "killed at: s from start (runs computed)",
        each(lambda k: f"{k['after']:.1f} s ({k['computed']})"),
    )
    row(
        "trials: complete / asked, not told (partly asked)",
        each(
            lambda k: (
                f"{k['states'].get('complete', 0)} / {k['states'].get('running', 0)} "
                f"({k['partial']})"
            )
        ),
    )
    row(
        "  not told, run computed (computed again)",
        each(lambda k: f"{len(k['in flight computed'])} ({k['again']})"),
    )
    row(
        "last run, to the end",
        lambda f: "—" if f["failed"] else f"{f['rerun seconds']:.2f} s",
    )
    row(
        "trials at the end (complete)",
        lambda f: f"{f['final trials']} ({f['final'].get('complete', 0)})",
        f"exactly {TRIALS}",
    )
    row("runs computed (distinct points)", lambda f: f"{f['computed']} ({f['distinct']})")
    row(
        "  computed twice (in flight at a kill)",
        lambda f: f"{f['duplicates']} ({f['duplicates in flight']})",
        "0 (in flight only)",
    )
    row("resumes after a kill", resumes, "yes")
    return table


def resumes(figures: dict[str, Any]) -> str:
    if figures["failed"]:
        return f"no: a rerun failed ({figures['failed']})"
    whole = figures["final trials"] == TRIALS == figures["final"].get("complete", 0)
    return "yes" if whole else "no"


# ---------------------------------------------------------------- Hydra's Optuna sweeper


def hydra_versions() -> str | None:
    """Hydra's and its sweeper's versions, or None when the sweeper is not importable."""
    from importlib import metadata

    try:
        import hydra
        import hydra_plugins.hydra_optuna_sweeper  # noqa: F401
    except ImportError:
        return None
    return f"hydra-core {hydra.__version__}, sweeper {metadata.version('hydra-optuna-sweeper')}"


def hydra_argv(root: Path, seed: int, *extra: str) -> list[str]:
    space = [f"x{i}=interval({ops.LOW},{ops.HIGH})" for i in range(ops.DIMS)]
    return [
        sys.executable, str(BENCH / "_search_ops.py"), "--multirun", "hydra/sweeper=optuna",
        f"hydra.sweeper.n_trials={TRIALS}", f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweep.dir={root / 'multirun'}", *extra, *space,
    ]  # fmt: skip


def command(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    """Run ``argv`` to its end; return its seconds and its output (raise when it fails)."""
    seconds, done = timed(
        lambda: subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds, done.stdout.decode()


def between_runs(log: Path) -> float:
    """Seconds per trial between the first and the last run's line of ``log``."""
    stamps = [float(line.split(" ", 1)[0]) for line in log.read_text().splitlines()]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def hydra_timed(root: Path) -> dict[str, float]:
    """A whole sweep as typed (a new process, no storage): its seconds, per trial, best."""
    folder, log = root / "hydra-time", root / "hydra-time" / "runs.log"
    folder.mkdir()
    seconds, _ = command(hydra_argv(folder, 0), {**os.environ, ops.LOG: str(log)}, cwd=folder)
    best = next(
        float(line.split(":", 1)[1])
        for line in (folder / "multirun" / "optimization_results.yaml").read_text().splitlines()
        if line.startswith("best_value:")
    )
    return {"seconds": seconds, "per trial": between_runs(log), "best": best}


def assay_timed(root: Path) -> dict[str, float]:
    """The same study with assay, as a new process (seed 0, pool of 2)."""
    folder, log = root / "assay-time", root / "assay-time.log"
    argv = [sys.executable, __file__, "--timed", str(folder)]
    seconds, out = command(argv, {**os.environ, ops.LOG: str(log)})
    return {"seconds": seconds, "per trial": between_runs(log), "best": float(out.split()[-1])}


def timed_driver(folder: Path) -> None:
    space = search(TRIALS, metric="value", parallel=PARALLEL, seed=0, **dists())
    results = Experiment(
        "rosenbrock", "_search_ops:noisy", space, folder=folder, backend=POOL, seed=0,
        progress=False,
    ).run()  # fmt: skip
    print(results.best().metrics["value"])


def hydra_kill_and_resume(root: Path, rng: random.Random) -> dict[str, Any]:
    """Kill a Hydra sweep whose study is kept in SQLite once, run the same command again."""
    folder = root / "hydra-kill"
    folder.mkdir()
    db = f"sqlite:///{folder / 'study.db'}"
    storage = [f"hydra.sweeper.storage={db}", "hydra.sweeper.study_name=rosenbrock"]
    return kill_and_rerun(
        hydra_argv(folder, KILL_SEED, *storage),
        folder,
        folder / "runs.log",
        lambda: optuna.load_study(study_name="rosenbrock", storage=db).get_trials(),
        kill_points(rng, 1),
    )


def time_table(mine: dict[str, float], hydra: dict[str, float] | None, versions: str) -> Table:
    table = Table(title="The same study, a new process each: assay beside Hydra's sweeper (seed 0)")
    table.add_column("measure")
    table.add_column("assay, ProcessPool(2), parallel=2", justify="right")
    table.add_column(f"Hydra sweeper ({versions}), basic launcher", justify="right")
    table.add_column("ratio", justify="right")
    if hydra is None:
        hydra = {}
    for label, key, fmt in (
        (f"seconds for {TRIALS} trials, start-up included", "seconds", "{:.2f} s"),
        ("per trial, between runs", "per trial", "{:.1f} ms"),
    ):
        scale = 1e3 if key == "per trial" else 1
        theirs = hydra.get(key)
        table.add_row(
            label,
            fmt.format(mine[key] * scale),
            "—" if theirs is None else fmt.format(theirs * scale),
            "" if theirs is None else _ratio(theirs, mine[key]),
        )
    table.add_row(
        "best value (seed 0)",
        f"{mine['best']:.2f}",
        "—" if "best" not in hydra else f"{hydra['best']:.2f}",
        "",
    )
    return table


def _ratio(peer: float, mine: float) -> str:
    return f"{peer / mine:.1f}× faster" if peer >= mine else f"{mine / peer:.1f}× slower"


# ---------------------------------------------------------------- main


def main() -> None:
    console = Console()
    rng = random.Random(KILL_SEED)
    versions = hydra_versions()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        best = quality(root)
        rows = [("disk", kind, overhead(root, kind)) for kind in ("tpe", "random")]
        splits = {"disk": breakdown(root)}
        memory = memory_root()
        if memory is not None:
            try:
                rows += [("memory", kind, overhead(memory, kind)) for kind in ("tpe", "random")]
                splits["memory file system"] = breakdown(memory)
            finally:
                shutil.rmtree(memory, ignore_errors=True)
        killed = kill_and_resume(root, rng)
        mine_timed = assay_timed(root)
        hydra_time = hydra_killed = None
        if versions is not None:
            hydra_time = hydra_timed(root)
            hydra_killed = hydra_kill_and_resume(root, rng)

    table, verdict = quality_table(best)
    console.print(table)
    print(f"best value: {verdict}")
    console.print(overhead_table(rows))
    console.print(breakdown_table(splits))
    console.print(kill_table(killed, hydra_killed))
    if versions is None:
        print(
            "Hydra's Optuna sweeper is not installed: its rows are skipped (its last release, "
            "1.3.0, pins optuna<3; its 1.4.0 pre-releases accept Optuna 4 and 5)."
        )
    else:
        print(
            "Hydra's sweeper, its study kept in SQLite (storage and study_name set), loads the "
            "study again when rerun and runs n_trials new trials after the killed sweep's; "
            "trials it had asked but not told stay RUNNING."
        )
    console.print(time_table(mine_timed, hydra_time, versions or "not installed"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:  # the search that is killed, in a process of its own
        driver(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["--timed"]:
        timed_driver(Path(sys.argv[2]))
    else:
        main()
