"""Where the runs of a sweep stand in its index: what a call of ``Experiment.run`` must run."""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class Standing:
    """Where the runs of a sweep stand in the index, by position in the sweep (ascending).

    Attributes:
        code_hash: the operation's current code hash ("" when unknown).
        retry_failed: failed runs run again (so they are not stale: they rerun anyway).
        missing: runs not in the index.
        pending: runs pending or cancelled.
        failed: runs that failed or timed out.
        other: finished runs recorded with another code hash, by that hash.
        noted: the index noted that it holds every run of the sweep.
        joined: the sweep's run ids were loaded into the index's connection.

    """

    code_hash: str
    retry_failed: bool
    missing: array[int] = field(default_factory=lambda: array("q"))
    pending: array[int] = field(default_factory=lambda: array("q"))
    failed: array[int] = field(default_factory=lambda: array("q"))
    other: dict[str, array[int]] = field(default_factory=dict)
    noted: bool = False
    joined: bool = False

    def add(self, position: int, status: str | None, code_hash: str | None) -> None:
        """Count the run at ``position`` (status None: not in the index); call in order."""
        if status is None:
            self.missing.append(position)
            return
        if status in ("pending", "cancelled"):
            self.pending.append(position)
        elif status in ("failed", "timeout"):
            self.failed.append(position)
            if self.retry_failed:
                return
        current = self.code_hash
        if status in ("success", "failed") and current and code_hash and code_hash != current:
            self.other.setdefault(code_hash, array("q")).append(position)


def merged(parts: Iterable[Sequence[int]]) -> array[int]:
    """Merge ascending sequences of positions into one, each position once."""
    out = array("q")
    for position in heapq.merge(*parts):
        if not out or out[-1] != position:
            out.append(position)
    return out
