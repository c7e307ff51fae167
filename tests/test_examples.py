"""Every example in ``examples/`` runs, as a user would run it, and prints what it promises.

Each example runs as a subprocess in a fresh working directory, one or more times in a row
(the second run of a cached example must come from the cache). ``EXAMPLES`` says, per file,
which command lines to run and what their output must show; a file in ``examples/`` without
an entry fails, so a new example cannot go untested. Scripts that a documentation page asks
the reader to save and run (marked ``<!-- example: NAME -->``) run too, and must print the
output the page shows.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._slurm import require_slurm_cluster
from tests._workspace import ROOT

#: Seconds one run of an example may take before the test fails.
TIMEOUT = 180


@dataclass(frozen=True)
class Run:
    """One command line of an example and what its standard output must show.

    ``expect`` and ``reject`` are regular expressions searched in the output (multi-line
    mode). The lines matching ``same_as_first`` must be identical to those of the example's
    first run (results served from a cache must be the results computed).
    """

    args: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    same_as_first: str | None = None


@dataclass(frozen=True)
class Example:
    runs: tuple[Run, ...]
    needs_slurm: bool = False


_PI_TABLE = r"^\s+\d+\s+\d\.\d{5}\s+\d\.\d{5}\s+\d\.\d{5}$"


def _steps_counts(load: str, smooth: str, peaks: str) -> tuple[str, ...]:
    counts = {"load": load, "smooth": smooth, "peaks": peaks}
    return tuple(
        rf"^\s*{name}: {n} computed, {6 - int(n)} from cache$" for name, n in counts.items()
    )


EXAMPLES: dict[str, Example] = {
    "scope_cli.py": Example(
        runs=(
            # the demo command: an option, scope keys for the function and for deep code
            Run(
                args=("train", "--lr", "0.01", "-D", "train.epochs=3", "-D", "model.width=64"),
                expect=(
                    r"^train: lr=0\.01 epochs=3 batch_size=32$",
                    r"^model: model\.depth=2 model\.width=64$",
                    r"^epoch 3: loss 0\.\d{4}$",
                ),
                reject=(r"^epoch 4:",),
            ),
            Run(
                args=("train", "--help"),
                expect=(r"--lr LR\s+learning rate of the optimiser\. \(default: 0\.1\)",),
            ),
            Run(
                args=("evaluate", "ckpt.pt", "-D", "model.width=16"),
                expect=(r"^evaluate ckpt\.pt on test: model width 16$",),
            ),
        ),
    ),
    "pi_sweep.py": Example(
        runs=(
            Run(
                args=("runs",),
                expect=(r"^\s+n_samples\s+mean\s+std", r"^\s+100000\s+3\.1\d{4}"),
                reject=(r"came from the cache",),
            ),
            Run(
                args=("runs",),
                expect=(r"^all 20 runs came from the cache in \d+\.\d{3} s$",),
                same_as_first=_PI_TABLE,
            ),
        ),
    ),
    "steps_pipeline.py": Example(
        runs=(
            Run(expect=(r"^window=25, 6 signals$", *_steps_counts("6", "6", "6"))),
            Run(expect=_steps_counts("0", "0", "0"), same_as_first=r"^signal-\d: "),
            # a changed window recomputes smooth and peaks; load is still served from the cache
            Run(args=("--window", "9"), expect=_steps_counts("0", "6", "6")),
        ),
    ),
    "estimate_pi.py": Example(
        runs=(
            Run(
                expect=(
                    r"^n_samples\s+replicate\s+pi_estimate\s+status$",
                    r"^\s+1000\s+0\s+3\.\d{5}\s+success$",
                    r"^\s+100000\s+2\s+3\.1\d{4}\s+success$",
                ),
                reject=(r"failed",),
            ),
            # every run has its own seeded stream: a second run prints the same table
            Run(expect=(), same_as_first=r"^\s+\d+\s+\d\s+3\.\d{5}\s+success$"),
        ),
    ),
    "slurm_example.py": Example(
        needs_slurm=True,
        runs=(
            Run(
                args=("cache",),
                expect=(
                    r"^20 seeds on Slurm in \d+\.\d s$",
                    r"^overall mean 0\.(4[89]|5[01])\d\d \(expected about 0\.5\)$",
                    r"^seed 0 was computed by SlurmJob<job_id=\d+_\d+",
                ),
            ),
            # the second run reads every result from the cache and submits nothing
            Run(
                args=("cache",),
                expect=(r"^20 seeds on Slurm in 0\.\d s$",),
                same_as_first=r"^overall mean ",
            ),
        ),
    ),
}


def example_files() -> list[Path]:
    return sorted((ROOT / "examples").glob("*.py"))


def run_example(script: Path, run: Run, cwd: Path) -> str:
    command = [sys.executable, str(script), *run.args]
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command[1:])} took more than {TIMEOUT} s")
    assert done.returncode == 0, (
        f"{' '.join(command[1:])} exited with {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def check_output(name: str, index: int, run: Run, stdout: str, first: str) -> None:
    where = f"{name} run {index + 1} (args {list(run.args)})"
    for pattern in run.expect:
        assert re.search(pattern, stdout, re.MULTILINE), (
            f"{where}: no line matches {pattern!r}; output:\n{stdout}"
        )
    for pattern in run.reject:
        assert not re.search(pattern, stdout, re.MULTILINE), (
            f"{where}: a line matches {pattern!r}, which must not appear; output:\n{stdout}"
        )
    if run.same_as_first is not None:
        wanted = re.compile(run.same_as_first)
        mine = [line for line in stdout.splitlines() if wanted.search(line)]
        theirs = [line for line in first.splitlines() if wanted.search(line)]
        assert mine, f"{where}: no line matches {run.same_as_first!r}; output:\n{stdout}"
        assert mine == theirs, f"{where}: these lines differ from the first run's"


@pytest.mark.slow
@pytest.mark.parametrize("script", example_files(), ids=lambda path: path.name)
def test_example_runs_and_prints_what_it_promises(script: Path, tmp_path: Path) -> None:
    example = EXAMPLES.get(script.name)
    if example is None:
        pytest.fail(
            f"examples/{script.name} has no entry in EXAMPLES of {Path(__file__).name}: "
            "add the command lines to run and the output they must show"
        )
    if example.needs_slurm:
        require_slurm_cluster(f"examples/{script.name}")
    first = ""
    for index, run in enumerate(example.runs):
        stdout = run_example(script, run, tmp_path)
        first = first or stdout
        check_output(script.name, index, run, stdout, first)


@pytest.mark.slow
@pytest.mark.parametrize("window", ["0", "-3"])
def test_steps_pipeline_refuses_a_window_that_is_not_positive(window: str, tmp_path: Path) -> None:
    script = ROOT / "examples" / "steps_pipeline.py"
    command = [sys.executable, str(script), "--window", window]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    # a usage error, before any data or cache is written: it names the option, the value and
    # what was expected
    assert done.returncode == 2, done.stderr
    assert f"argument --window: {window!r}; expected a positive int" in done.stderr
    assert not (tmp_path / "pipeline").exists()


def test_every_table_entry_names_an_example_that_exists() -> None:
    present = {path.name for path in example_files()}
    assert set(EXAMPLES) <= present, f"entries without a file: {sorted(set(EXAMPLES) - present)}"
    assert all(example.runs for example in EXAMPLES.values())


def test_the_output_checks_can_fail() -> None:
    run = Run(expect=(r"^done$",), reject=(r"error",), same_as_first=r"^row")
    check_output("x.py", 1, run, "row 1\ndone\n", "row 1\n")
    for stdout, first in [("row 1\n", "row 1\n"), ("row 1\ndone\nerror\n", "row 1\n")]:
        with pytest.raises(AssertionError):
            check_output("x.py", 1, run, stdout, first)
    with pytest.raises(AssertionError, match="differ from the first run"):
        check_output("x.py", 1, run, "row 2\ndone\n", "row 1\n")


# ---------------------------------------------------------------- scripts shown in the docs

#: A script the docs ask the reader to save under NAME, then the output the docs show for it.
DOC_SCRIPT = re.compile(
    r"^<!-- example: (?P<name>[\w.-]+) -->\n```python\n(?P<code>.*?)^```\n"
    r"(?P<after>.*?)^```text\n(?P<output>.*?)^```",
    re.MULTILINE | re.DOTALL,
)


def documented_script(page: str, name: str) -> tuple[str, str]:
    """Return the code of script ``name`` on ``page`` and the output shown after it."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for match in DOC_SCRIPT.finditer(text):
        if match["name"] == name:
            return match["code"], match["output"]
    raise AssertionError(f"{page} shows no script {name!r} followed by its output")


@pytest.mark.slow
def test_the_getting_started_sweep_prints_what_the_page_shows_then_resumes(
    tmp_path: Path,
) -> None:
    code, shown = documented_script("docs/getting-started.md", "first_sweep.py")
    script = tmp_path / "first_sweep.py"
    script.write_text(code, encoding="utf-8")
    first = run_example(script, Run(), tmp_path)
    # the seeds derive from the fixed default root seed: the page's numbers are everyone's
    assert first == shown
    second = run_example(script, Run(), tmp_path)
    assert second.splitlines()[:-1] == first.splitlines()[:-1]
    assert second.splitlines()[-1] == "0 ran, 24 from cache"
