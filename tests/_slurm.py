"""Whether a real Slurm cluster answers here, for the cross-package tests that submit to one."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

START_HINT = "start one with: sudo bash scripts/slurm/start.sh"


#: sinfo's short states of a node that cannot run jobs.
_UNUSABLE = frozenset({"down", "drain", "drng", "fail", "failg", "maint", "unk", "boot", "inval"})


@functools.lru_cache(maxsize=1)
def slurm_problem() -> str | None:
    """Why no Slurm cluster is usable here, or None when one answers with a usable node."""
    if shutil.which("sbatch") is None:
        return "no Slurm here ('sbatch' is not on PATH)"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        return f"Slurm does not answer ({error})"
    # Busy nodes count ("comp": finishing a job, "plnd": planned for one); a trailing "*"
    # means the node does not respond.
    if not any(not state.endswith("*") and state not in _UNUSABLE for state in states):
        return f"no Slurm node is up (sinfo states: {states})"
    return None


def require_slurm_cluster(what: str) -> None:
    """Skip ``what`` unless a cluster answers; fail instead where ASSAY_REQUIRE_SLURM=1 (CI)."""
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("ASSAY_REQUIRE_SLURM") == "1":
        pytest.fail(f"{what} needs a Slurm cluster and ASSAY_REQUIRE_SLURM=1, but {problem}")
    pytest.skip(f"{what} needs a Slurm cluster: {problem}; {START_HINT}")
