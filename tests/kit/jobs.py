"""The cluster jobs an experiment folder refers to."""

from __future__ import annotations

import json
from pathlib import Path


def job_ids(folder: Path) -> set[str]:
    """Return the job ids the sweep's job references name (one per array task)."""
    return {
        json.loads(p.read_text())["ref"]["job_id"] for p in folder.glob("cache/*/*/jobs/*.json")
    }
