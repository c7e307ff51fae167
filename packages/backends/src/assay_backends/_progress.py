"""A progress bar over the items of a submission: rich on a terminal, silent otherwise."""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import Any, TextIO


def progress_enabled(setting: bool | None, stream: TextIO | None = None) -> bool:
    """Decide whether to show a bar: ``setting`` if given, else whether ``stream`` is a terminal.

    ``stream`` defaults to ``sys.stderr``, where the bar is drawn. An automatic bar also needs rich
    to be installed; an explicit ``True`` without rich raises, naming the extra to install.

    Examples:
        >>> import io
        >>> progress_enabled(None, io.StringIO())
        False
        >>> progress_enabled(False)
        False

    """
    if setting is not None and not isinstance(setting, bool):
        raise TypeError(f"progress must be True, False or None (automatic), got {setting!r}")
    has_rich = importlib.util.find_spec("rich") is not None
    if setting is True and not has_rich:
        raise ImportError(
            "progress=True needs rich: pip install 'assay-backends[progress]' (or pip install rich)"
        )
    if setting is not None:
        return setting
    stream = sys.stderr if stream is None else stream
    return has_rich and bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """Count finished items on a rich bar drawn on ``stream`` (stderr), or do nothing when disabled.

    Examples:
        >>> with ProgressBar(total=3, description="step", enabled=False) as bar:
        ...     bar.advance(3)
        >>> bar.done
        3

    """

    def __init__(
        self, total: int, description: str, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self.total = total
        self.stream = stream
        self.description = description
        self.enabled = enabled
        self.done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            # Imported lazily: rich is an optional extra, needed only when a bar is drawn.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream if self.stream is not None else sys.stderr),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more finished items."""
        self.done += count
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
