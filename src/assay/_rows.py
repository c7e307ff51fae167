"""The rows of the results index: ``RunRow`` and ``Outcome``, their codec and digests.

Every row carries a digest of its values and of the experiment that wrote it, and every
record one of its text with its run id, so a row changed outside assay (or copied from another
experiment) is detected when it is read. A run's job is stored as JSON text (``job_text``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class DamagedIndexError(ValueError):
    """A row of the results index does not match its digest: changed outside assay."""


def _row_digest(
    config: str,
    run_id: str,
    params: str,
    replicate: int,
    status: str,
    metrics: str,
    duration: float | None,
    error: str | None,
    code_hash: str | None,
    job: str | None = None,
) -> str:
    """Return the digest of one row of the index: its values and the experiment that wrote it.

    The values are those SQLite gives back (JSON text, float or None), in their ``repr``. A
    row without a job leaves it out: rows written before the column existed keep their digest.
    """
    values = (run_id, params, replicate, status, metrics, duration, error, code_hash)
    return _row_hasher(config)(values if job is None else (*values, job))


def _row_hasher(config: str) -> Callable[[tuple[Any, ...]], str]:
    """Return the digest function of the rows of experiment ``config`` (its part hashed once)."""
    base = hashlib.blake2b(repr(config).encode(), digest_size=16)

    def digest(values: tuple[Any, ...]) -> str:
        hasher = base.copy()
        hasher.update(repr(values).encode())
        return hasher.hexdigest()

    return digest


def _record_digest(run_id: str, record: str | None) -> str:
    """Return the digest of a row's record text, with its run id (a swapped record differs)."""
    return hashlib.blake2b(repr((run_id, record)).encode(), digest_size=16).hexdigest()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


#: The digest of a row as SQLite computes it (the function is registered on writers).
_ROW_DIGEST_SQL = (
    "assay_row_digest(?, run_id, params, replicate, status, metrics, duration, error, code_hash, "
    "job)"
)


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the index holds it: what tables, filters and plots need.

    Attributes:
        run_id: the canonical run id.
        params: the run's parameters.
        replicate: the replicate index.
        status: ``pending``, ``success``, ``failed``, ``timeout`` or ``cancelled``.
        metrics: the last value of each scalar metric.
        duration: seconds the operation ran, or None when it has not finished.
        error: ``"Type: message"`` of a failed run, the job's message of a run whose job
            failed, timed out or was cancelled, else None.
        code_hash: the code hash of the operation that produced the row.
        job_id: the batch job the run ran in (``"123_4"`` for a Slurm array task), if any.
        stdout: the path of that job's standard output log, if known.
        stderr: the path of that job's standard error log, if known.

    """

    run_id: str
    params: dict[str, Any]
    replicate: int
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None
    job_id: str | None = None
    stdout: str | None = None
    stderr: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one run, as the driver writes it into the index."""

    run_id: str
    status: str
    metrics: dict[str, Any]
    duration: float | None
    error: str | None
    code_hash: str | None
    record: str | None
    #: The job the run ran in, as ``job_text`` writes it; None outside a job.
    job: str | None = None


def _config_of(identity: Any) -> str:
    """Return the config uid of a stored experiment identity ("" when there is none)."""
    config = identity.get("config") if isinstance(identity, dict) else None
    return config if isinstance(config, str) else ""


def job_text(
    job_id: str | None, stdout: str | None = None, stderr: str | None = None
) -> str | None:
    """Return the index's text of a run's job (None when the run had no job and no logs).

    Examples:
        >>> job_text("12_3", "/logs/12_3_0_log.out", None)
        '{"id": "12_3", "stdout": "/logs/12_3_0_log.out", "stderr": null}'
        >>> job_text(None) is None
        True

    """
    if job_id is None and stdout is None and stderr is None:
        return None
    return json.dumps({"id": job_id, "stdout": stdout, "stderr": stderr})


def _job_fields(text: str | None) -> tuple[str | None, str | None, str | None]:
    """Return job id, stdout and stderr paths of a row's job text (Nones when it has none)."""
    if text is None:
        return None, None, None
    try:
        job = json.loads(text)
    except ValueError:
        return None, None, None
    if not isinstance(job, dict):
        return None, None, None
    fields = (job.get("id"), job.get("stdout"), job.get("stderr"))
    return tuple(v if isinstance(v, str) else None for v in fields)  # type: ignore[return-value]


def _digested(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return a row's values as its digest covers them: the job (last) only when it has one."""
    return values if values[-1] is not None else values[:-1]
