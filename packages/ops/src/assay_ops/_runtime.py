"""Runtime: where a run may write, and what resources it was given."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any


def path_text(value: str | Path) -> str:
    """Return ``str(Path(value))`` without building a Path when ``value`` is already normal.

    Runs pass their directories as plain strings; pathlib parsing would cost more than the
    rest of a trivial run's bookkeeping.
    """
    if type(value) is str and value and os.sep == "/":
        parts = value.split("/")
        if "." not in parts and "" not in parts[1:]:  # no "//", "/./" or trailing "/"
            return value
    return str(Path(value))


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}")
    return value


class Runtime:
    """The non-reproducible plumbing of one run: directories and resource hints.

    Nothing here may change a run's results; it says *where* a run writes and *what* it was
    given. The scratch directory is created on first use and removed by ``cleanup()`` (which
    ``OperationWrapper.run`` calls when the run ends, success or failure) unless
    ``keep_scratch`` is set.

    After ``cleanup()`` the runtime makes no folder again: reading ``scratch_dir`` raises
    ``RuntimeError`` (it returns the kept folder when ``keep_scratch`` is set and the run made
    one), so a look at it after the run cannot leave an empty temporary folder behind. Passing
    the runtime to another run, or entering it with ``with``, opens it again with a fresh
    scratch folder.

    Args:
        run_dir: The run's own directory for outputs that must outlive it; created on first use.
        scratch_root: Where to create the scratch directory (default: the system temp folder).
        keep_scratch: Keep the scratch directory after the run (for debugging).
        cpus: CPUs given to the run (int >= 1).
        gpus: GPUs given to the run (int >= 0).
        memory: Memory given to the run in megabytes, or ``None`` when unknown.
        backend: Name of the backend executing the run (``"inline"`` when called directly).
        job: Identifier of the batch job the run ran in (a Slurm job ``"1234"`` or array task
            ``"1234_5"``, a local job's process id), where its logs are found; ``None`` outside
            a job.

    Example:
        >>> with Runtime(cpus=2) as runtime:
        ...     path = runtime.scratch_dir / "tmp.txt"
        ...     _ = path.write_text("scratch")
        >>> path.exists()
        False

    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        scratch_root: str | Path | None = None,
        keep_scratch: bool = False,
        cpus: int = 1,
        gpus: int = 0,
        memory: int | None = None,
        backend: str = "inline",
        job: str | None = None,
    ) -> None:
        if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"run_dir={run_dir!r}: expected a str or Path, or None")
        # Kept as given; the Path is built on first use (most runs never ask for it).
        self._run_dir_raw = run_dir
        self._run_dir: Path | None = None
        self._scratch_root = None if scratch_root is None else Path(scratch_root)
        self._scratch: Path | None = None
        # Set by cleanup(): the run is over, so no scratch folder may be made any more.
        self._closed = False
        self._removed: Path | None = None  # the scratch folder cleanup() removed, for errors
        self.keep_scratch = bool(keep_scratch)
        self.cpus = _check_count("cpus", cpus, 1)
        self.gpus = _check_count("gpus", gpus, 0)
        self.memory = None if memory is None else _check_count("memory", memory, 1)
        if not isinstance(backend, str) or not backend:
            raise ValueError(f"backend={backend!r}: expected a non-empty backend name")
        self.backend = backend
        if job is not None and (not isinstance(job, str) or not job):
            raise ValueError(f"job={job!r}: expected a non-empty job identifier or None")
        self.job = job

    @property
    def scratch_dir(self) -> Path:
        """A private temporary directory, created on first use and removed after the run.

        Raises:
            RuntimeError: When read after ``cleanup()`` (the run has ended), unless
                ``keep_scratch`` kept a folder the run made.

        """
        if self._closed:
            if self._scratch is not None and self._scratch.is_dir():
                return self._scratch  # kept by keep_scratch=True
            raise RuntimeError(self._closed_message())
        if self._scratch is None or not self._scratch.is_dir():
            self._scratch = Path(tempfile.mkdtemp(prefix="assay-scratch-", dir=self._scratch_root))
        return self._scratch

    def _closed_message(self) -> str:
        made = (
            f"its scratch folder {self._removed} was removed"
            if self._removed is not None
            else "it made no scratch folder"
        )
        return (
            f"this Runtime's run has ended and {made}; a scratch folder is not made after "
            "cleanup() (it would never be removed). Use runtime.scratch_dir inside the "
            "operation, or build the Runtime with keep_scratch=True to inspect the folder "
            "after the run"
        )

    def _reopen(self) -> None:
        # OperationWrapper.run and `with runtime:` call this, so a runtime passed to several
        # runs gets a fresh scratch folder in each.
        self._closed = False
        self._removed = None

    @property
    def has_run_dir(self) -> bool:
        """Whether this runtime was given a run directory."""
        return self._run_dir_raw is not None

    @property
    def run_dir(self) -> Path:
        """The run's own output directory, created on first use.

        Raises:
            RuntimeError: When the runtime was built without a ``run_dir``.

        """
        if self._run_dir_raw is None:
            raise RuntimeError(
                "this Runtime has no run directory (run_dir=None); build it with "
                "Runtime(run_dir=...) or write temporary files to runtime.scratch_dir"
            )
        if self._run_dir is None:
            self._run_dir = Path(self._run_dir_raw)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        return self._run_dir

    def cleanup(self) -> None:
        """End the run: remove the scratch directory, unless ``keep_scratch`` is set.

        Safe to call twice. Afterwards ``scratch_dir`` makes no new folder (see the class).
        """
        if self._scratch is not None and not self.keep_scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._removed, self._scratch = self._scratch, None
        self._closed = True

    def to_dict(self) -> dict[str, Any]:
        """Return the resource hints and directories as a JSON-serialisable dict."""
        return {
            "backend": self.backend,
            "job": self.job,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "memory": self.memory,
            "run_dir": None if self._run_dir_raw is None else path_text(self._run_dir_raw),
        }

    def __enter__(self) -> Runtime:
        self._reopen()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Runtime({fields})"
