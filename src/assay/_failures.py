"""The failure policy of a sweep, and the summary of what did not succeed.

A sweep goes on past failed, timed-out and cancelled runs by default and says at its end what
they were; ``max_failures`` stops it once that many runs failed or timed out in one call. The
runs it did not get to are recorded ``cancelled`` with the reason, so a plain rerun resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._results import Results, count_runs

#: Statuses counted by ``max_failures``: the runs that ran and went wrong. A cancelled run
#: was stopped from outside (scancel, Ctrl-C, the policy itself) and is not counted.
COUNTED = ("failed", "timeout")
#: Statuses the end-of-sweep summary reports, in this order.
REPORTED = ("failed", "timeout", "cancelled")
#: Errors the summary shows, the first ones in planning order.
SHOWN = 3


class TooManyFailures(Exception):
    """Raised inside a sweep once ``max_failures`` runs failed or timed out: stops it.

    Raised in the backend's watch callback, it makes the backend cancel the jobs that have
    not ended; the sweep catches it and records the runs left ``cancelled``.
    """


def check_max_failures(value: int | None) -> int | None:
    """Return ``value`` if it is a valid ``max_failures`` (None or an int >= 1), else raise.

    Examples:
        >>> check_max_failures(3), check_max_failures(None)
        (3, None)

    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"max_failures = {value!r}; expected an int >= 1 (stop the sweep once that many "
            "runs failed or timed out), or None to run every run whatever fails"
        )
    return value


class FailureCount:
    """Counts the runs of one call that failed or timed out, against ``max_failures``.

    Examples:
        >>> count = FailureCount(2)
        >>> count.add("failed"); count.add("cancelled"); count.reached
        False
        >>> count.add("timeout"); count.reached
        True

    """

    def __init__(self, max_failures: int | None) -> None:
        self.limit = check_max_failures(max_failures)
        self.count = 0

    def add(self, status: str, runs: int = 1) -> None:
        """Count ``runs`` runs that ended with ``status``."""
        if status in COUNTED:
            self.count += runs

    @property
    def reached(self) -> bool:
        """Whether the sweep must stop: ``max_failures`` runs failed or timed out."""
        return self.limit is not None and self.count >= self.limit

    def left(self) -> int | None:
        """Return how many more failures the sweep takes before it stops (None: no limit)."""
        return None if self.limit is None else max(self.limit - self.count, 0)

    def reason(self) -> str:
        """Say why the sweep stopped, for the runs it leaves ``cancelled``."""
        return (
            f"not run: the sweep stopped after {count_runs(self.count)} failed or timed out "
            f"(max_failures={self.limit}); run it again to run this run"
        )


@dataclass(frozen=True)
class FailureNote:
    """One run that did not succeed, as the end-of-sweep summary shows it.

    Attributes:
        run_id: the run.
        status: ``failed``, ``timeout`` or ``cancelled``.
        error: its error (the job's message for a run of a failed job), None when unknown.

    """

    run_id: str
    status: str
    error: str | None


def first_failures(results: Results, shown: int = SHOWN) -> tuple[FailureNote, ...]:
    """Return the first ``shown`` runs of ``results`` that did not succeed, in planning order.

    Runs with an error come before those without one (a cancelled run often has none).
    """
    notes: list[FailureNote] = []
    bare: list[FailureNote] = []
    for row in results.with_status(*REPORTED):
        note = FailureNote(row.run_id, row.status, row.error)
        (notes if row.error else bare).append(note)
        if len(notes) >= shown:
            break
    return tuple([*notes, *bare][:shown])


def failure_lines(
    name: str,
    counts: dict[str, int],
    notes: tuple[FailureNote, ...],
    folder: str,
    stopped: str | None = None,
) -> list[str]:
    """Return the lines that summarise a sweep's runs that did not succeed (none if all did).

    Examples:
        >>> notes = (FailureNote("ab12", "failed", "ValueError: bad lr"),)
        >>> for line in failure_lines("fit", {"success": 3, "failed": 1}, notes, "runs/fit"):
        ...     print(line)
        fit: 1 run did not succeed: 1 failed
          run ab12 (failed): ValueError: bad lr
          list them all: assay results runs/fit --status failed

    """
    bad = {status: counts[status] for status in REPORTED if counts.get(status)}
    if not bad:
        return []
    total = sum(bad.values())
    parts = ", ".join(f"{n} {status}" for status, n in bad.items())
    lines = [f"{name}: {count_runs(total)} did not succeed: {parts}"]
    if stopped:
        lines.append(f"  stopped early: {stopped}")
    for note in notes:
        lines.append(f"  run {note.run_id} ({note.status}): {_short(note.error or 'no error')}")
    statuses = ",".join(bad)
    lines.append(f"  list them all: assay results {_quoted(folder)} --status {statuses}")
    return lines


def _short(text: str, width: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 3] + "..."


def _quoted(path: str) -> str:
    import shlex  # here: only a summary with failures needs it

    return shlex.quote(path)
