"""Shared fixtures: whether a real Slurm cluster answers here.

The Slurm tests run against a real cluster (``scripts/slurm/start.sh`` starts a single-node one).
Where none answers they skip, saying how to start it; with ``ASSAY_REQUIRE_SLURM=1`` (set in CI)
they fail instead, so a broken cluster cannot pass as a skipped suite.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _load_testkit() -> None:
    """Make ``import backends_testkit`` work, this folder staying off ``sys.path``.

    On the path, it would make pytest name the test modules ``test_x`` instead of
    ``packages.backends.tests.test_x``; the operations they define are imported by that name
    in the jobs, which start in the repository's root folder.
    """
    path = Path(__file__).with_name("backends_testkit.py")
    spec = importlib.util.spec_from_file_location("backends_testkit", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_load_testkit()

START_HINT = "start one with: sudo bash scripts/slurm/start.sh (Debian 12, root)"


#: sinfo's short states of a node that cannot run jobs.
_UNUSABLE = frozenset({"down", "drain", "drng", "fail", "failg", "maint", "unk", "boot", "inval"})


@functools.lru_cache(maxsize=1)
def slurm_problem() -> str | None:
    """Why no Slurm cluster is usable here, or None when one answers with a usable node."""
    if shutil.which("sbatch") is None:
        return "no Slurm here ('sbatch' is not on PATH)"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        return f"Slurm does not answer ({error})"
    # Busy nodes count ("comp": finishing a job, "plnd": planned for one); a trailing "*"
    # means the node does not respond.
    if not any(not state.endswith("*") and state not in _UNUSABLE for state in states):
        return f"no Slurm node is up (sinfo states: {states})"
    return None


@pytest.fixture
def slurm_cluster() -> None:
    """Skip (or fail under ASSAY_REQUIRE_SLURM=1) unless a real Slurm cluster answers."""
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("ASSAY_REQUIRE_SLURM") == "1":
        pytest.fail(f"ASSAY_REQUIRE_SLURM=1 but {problem}")
    pytest.skip(f"{problem}; {START_HINT}")


def _notes_of(error: BaseException) -> str:
    # Python 3.11 attaches notes (__notes__); on 3.10 a cached error carries its original
    # traceback as its cause instead.
    notes = getattr(error, "__notes__", None)
    return "\n".join(notes) if notes is not None else str(error.__cause__ or "")


@pytest.fixture
def notes_of() -> Callable[[BaseException], str]:
    """The text attached to an error: its notes, or on Python 3.10 its cause."""
    return _notes_of


Outcome = dict[str, Any]


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, Outcome]:
    outcome: Outcome = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def in_thread() -> Callable[[Callable[[], Any]], tuple[threading.Thread, Outcome]]:
    """Start ``work()`` in a daemon thread; its outcome dict gets ``result`` or ``error``."""
    return _in_thread
