"""The sweep's progress bar: counts of done, failed and cached runs, with an ETA."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any


class SweepProgress:
    """A rich progress bar over the runs of one ``Experiment.run()`` call.

    Drawn when ``enabled`` (the experiment decides: on a terminal unless told otherwise); when
    off, it still counts, so the closing summary line is the same everywhere.
    """

    def __init__(self, total: int, *, enabled: bool, label: str = "runs") -> None:
        self.total = total
        self.done = self.failed = self.cached = 0
        self.started = time.perf_counter()
        self._bar: Any = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),  # stdout stays for results
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, counts=self._counts())

    def _counts(self) -> str:
        return (
            f"[green]{self.done} done[/] [red]{self.failed} failed[/] [cyan]{self.cached} cached[/]"
        )

    def advance(self, status: str, cached: bool) -> None:
        """Count one finished run."""
        if status in ("failed", "timeout", "cancelled"):
            self.failed += 1
        else:
            self.done += 1
        self.cached += cached
        if self._bar is not None:
            self._bar.update(self._task, advance=1, counts=self._counts())

    @property
    def elapsed(self) -> float:
        """Seconds since the bar was made."""
        return time.perf_counter() - self.started

    def __enter__(self) -> SweepProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
