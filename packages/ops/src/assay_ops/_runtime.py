"""Runtime: where a run may write, and what resources it was given."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ._checkpoint import CHECKPOINT_FILE, read_checkpoint, register, unregister


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
        logs: Paths of the job's stdout and stderr log files, recorded in the run's record
            (``runtime["logs"]``); ``None`` outside a job.

    A run may opt in to checkpointing with [`on_timeout`][assay_ops.Runtime.on_timeout]: when the
    scheduler warns that the job's time limit (or a preemption) is near, the state the hook returns
    is saved and the job requeued; the run, started again, finds it with
    [`checkpoint`][assay_ops.Runtime.checkpoint].

    Examples:
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
        logs: tuple[str, str] | None = None,
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
        if logs is not None and (
            not isinstance(logs, tuple)
            or len(logs) != 2
            or not all(isinstance(path, (str, os.PathLike)) for path in logs)
        ):
            raise ValueError(f"logs={logs!r}: expected a (stdout, stderr) tuple of paths or None")
        self.logs = None if logs is None else (path_text(logs[0]), path_text(logs[1]))

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

    def on_timeout(self, save: Callable[[], Any]) -> None:
        """Opt in to checkpointing: ``save()`` is called when the time limit is near.

        When the scheduler warns that the job's time limit (or a preemption) is near, the backend
        calls ``save()`` (from a signal handler, at whatever point the run has reached: return a
        consistent snapshot, such as the state after the last complete step), pickles what it
        returns atomically to ``<run_dir>/checkpoint.pkl`` and requeues the job. The operation then
        starts again from its beginning, where [`checkpoint`][assay_ops.Runtime.checkpoint] returns
        the saved state. The file is removed when the run ends with a record (success or failure).
        Calling it again replaces the hook. Without a hook, the warning is ignored and the run goes
        on until the hard limit.

        Args:
            save: Returns the state to resume from (anything picklable).

        Raises:
            TypeError: ``save`` is not callable.
            RuntimeError: This runtime has no run directory to hold the checkpoint.

        Examples:
            >>> import tempfile
            >>> runtime = Runtime(run_dir=tempfile.mkdtemp())
            >>> state = runtime.checkpoint() or {"epoch": 0}
            >>> runtime.on_timeout(lambda: state)
            >>> runtime.cleanup()

        """
        if not callable(save):
            raise TypeError(f"save={save!r}: expected a callable returning the state to save")
        if not self.has_run_dir:
            raise RuntimeError(
                "on_timeout() needs a run directory to hold the checkpoint, and this Runtime "
                "has none (run_dir=None); build it with Runtime(run_dir=...)"
            )
        register(id(self), self._checkpoint_path(), save)

    def checkpoint(self) -> Any | None:
        """Return the state that the last attempt of this run saved, if any.

        That state is what the hook registered with [`on_timeout`][assay_ops.Runtime.on_timeout]
        returned when the time limit was near.

        Returns:
            The unpickled state, or None when nothing was saved (first attempt, no run
            directory).

        Raises:
            RuntimeError: The checkpoint file exists but cannot be read.

        Examples:
            >>> Runtime().checkpoint() is None
            True

        """
        if not self.has_run_dir:
            return None
        return read_checkpoint(self._checkpoint_path())

    def _checkpoint_path(self) -> Path:
        assert self._run_dir_raw is not None  # callers check has_run_dir
        return Path(self._run_dir_raw) / CHECKPOINT_FILE

    def cleanup(self) -> None:
        """End the run: remove the scratch directory, unless ``keep_scratch`` is set.

        Safe to call twice. Afterwards ``scratch_dir`` makes no new folder (see the class).
        The checkpoint hook is forgotten, and the checkpoint file removed, unless an exception
        is on its way out (a storage failure: the run left no record, and its next attempt
        resumes from the file).
        """
        self._close(keep_checkpoint=sys.exc_info()[1] is not None)

    def _close(self, keep_checkpoint: bool) -> None:
        self._end_checkpointing(keep=keep_checkpoint)
        if self._scratch is not None and not self.keep_scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._removed, self._scratch = self._scratch, None
        self._closed = True

    def _end_checkpointing(self, keep: bool) -> None:
        unregister(id(self))
        if not keep and self._run_dir_raw is not None:
            # os.path, not pathlib: this runs at the end of every run, trivial ones included.
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(os.path.join(os.fspath(self._run_dir_raw), CHECKPOINT_FILE))

    def to_dict(self) -> dict[str, Any]:
        """Return the resource hints and directories as a JSON-serialisable dict.

        ``"logs"`` (``{"stdout": ..., "stderr": ...}``) is there only when the runtime was
        given the job's log paths.
        """
        described: dict[str, Any] = {
            "backend": self.backend,
            "job": self.job,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "memory": self.memory,
            "run_dir": None if self._run_dir_raw is None else path_text(self._run_dir_raw),
        }
        if self.logs is not None:
            described["logs"] = {"stdout": self.logs[0], "stderr": self.logs[1]}
        return described

    def __enter__(self) -> Runtime:
        self._reopen()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An error leaving the block is not the end of the run: its checkpoint stays.
        self._close(keep_checkpoint=exc is not None)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Runtime({fields})"
