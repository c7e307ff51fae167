"""Whether this machine can submit Slurm jobs."""

from __future__ import annotations

import shutil


class SlurmUnavailableError(RuntimeError):
    """Raised when a ``Slurm`` backend is used on a machine without Slurm's ``sbatch``."""


def slurm_available() -> bool:
    """Return True when ``sbatch`` is on ``PATH``, the test ``Auto`` uses to pick Slurm.

    Examples:
        >>> isinstance(slurm_available(), bool)
        True

    """
    return shutil.which("sbatch") is not None


def require_slurm(backend: str = "Slurm") -> None:
    """Raise an error unless ``sbatch`` is on ``PATH``.

    Raises:
        SlurmUnavailableError: ``sbatch`` is not on ``PATH``; the message names ``backend``.

    Examples:
        >>> try:
        ...     require_slurm()
        ... except SlurmUnavailableError as error:
        ...     assert "sbatch" in str(error)

    """
    if not slurm_available():
        raise SlurmUnavailableError(
            f"backend {backend!r} needs Slurm, but 'sbatch' is not on PATH on this machine; "
            "use backend 'Auto' to fall back to local processes, or 'LocalProcess'"
        )
