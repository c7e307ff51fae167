"""``assay status --watch``: the pending runs and the metrics they stream, live.

Each round reads the index for the pending runs, asks the scheduler about their jobs (as
``assay status`` does, see ``_status``) and reads what the runs appended to their streams
(``_follow``), then draws one table: redrawn in place on a terminal, printed per round
otherwise.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._folder import RUNS
from ._index import ResultsIndex
from ._results import count_runs
from ._rows import RunRow
from ._schema import STATUSES
from ._status import LISTED, job_references, run_states

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from rich.console import Group

    from ._follow import LivePoint

#: Seconds between two refreshes of ``assay status --watch``.
WATCH_INTERVAL = 2.0


def counts_line(counts: Mapping[str, int]) -> str:
    """Return the line counting the runs by status.

    Examples:
        >>> counts_line({"pending": 1, "success": 7})
        '8 runs: pending 1, success 7, failed 0, timeout 0, cancelled 0, pruned 0'

    """
    parts = [f"{status} {counts.get(status, 0)}" for status in STATUSES]
    return f"{sum(counts.values())} runs: " + ", ".join(parts)


def watch_runs(
    folder: str | Path,
    config: str | None,
    *,
    interval: float = WATCH_INTERVAL,
    every: bool = False,
    max_rounds: int | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Show the pending runs and their latest streamed metrics until none is pending.

    Each round reads the index (the first ``LISTED`` pending runs, every one with ``every``),
    the state of their jobs and what the runs appended to their ``live.jsonl`` since the last
    round, then shows one row per run: its state (a pending run that streams is ``running``),
    job, parameters, seconds since its last value, and the latest value of each metric with
    its step (``value @step``). On a terminal the table is redrawn in place; otherwise one
    table is printed per round. Ctrl-C ends the watch (as does the last pending run's end).

    Args:
        folder: The experiment folder.
        config: The experiment's step configuration (where its job references are).
        interval: Seconds between two rounds.
        every: Show every pending run, not the first ``LISTED``.
        max_rounds: Stop after this many rounds (for tests; None: until no run is pending).
        sleep: Waits between rounds (for tests).

    """
    from rich.console import Console

    from ._follow import Follower

    follower = Follower(Path(folder) / RUNS)
    latest: dict[str, dict[str, LivePoint]] = {}
    console = Console()
    ended: dict[str, int] | None = None  # the counts once no run is pending
    with _ctrl_c_ends(), contextlib.ExitStack() as stack:
        live = None
        if console.is_terminal:
            from rich.live import Live

            live = stack.enter_context(Live(console=console, auto_refresh=False))
        rounds = 0
        while True:
            counts, rows, more = _pending(folder, every)
            shown = [row.run_id for row in rows]
            gone = set(latest) - set(shown)  # ended: what was kept of them goes
            follower.forget(gone)
            latest = {run_id: latest[run_id] for run_id in shown if run_id in latest}
            for point in follower.poll(shown):
                latest.setdefault(point.run_id, {})[point.name] = point
            table = _watch_table(rows, run_states(rows, job_references(folder, config)), latest)
            lines = [f"{counts_line(counts)} at {time.strftime('%H:%M:%S')}"]
            if more:
                lines.append(f"... and {count_runs(more)} more (--all lists every run)")
            rendered = _rendered(table, lines)
            if live is not None:
                live.update(rendered, refresh=True)
            elif table:  # the last round's counts are the closing line's
                Console(width=max(100, len(table[0]) * 14)).print(rendered)
            rounds += 1
            if not counts.get("pending"):
                ended = counts
                break
            if max_rounds is not None and rounds >= max_rounds:
                break
            sleep(interval)
    if ended is not None:
        print(f"{counts_line(ended)}: no run pending")


def _pending(folder: str | Path, every: bool) -> tuple[dict[str, int], list[RunRow], int]:
    """Return the counts by status, the pending runs to show and how many more are pending."""
    with ResultsIndex(folder, read_only=True) as index:
        counts = index.status_counts()
        seqs = index.seqs(status="pending")
        shown = seqs if every else seqs[:LISTED]
        rows = list(index.iter_rows(shown))
    return counts, rows, len(seqs) - len(shown)


def _watch_table(
    rows: list[RunRow],
    states: list[tuple[str, str]],
    latest: Mapping[str, Mapping[str, LivePoint]],
) -> list[dict[str, Any]]:
    """Return the watch's rows: run, state, job, params, last update and latest metrics."""
    from ._table import _cell

    names = list(dict.fromkeys(name for row in rows for name in latest.get(row.run_id, {})))
    now = time.time()
    table = []
    for row, (state, job) in zip(rows, states, strict=True):
        points = latest.get(row.run_id, {})
        last = max((p.t for p in points.values()), default=None)
        entry: dict[str, Any] = {
            "run": row.run_id,
            "state": "running" if points and state == "pending" else state,
            "job": job,
            "params": ", ".join(f"{k}={_cell(v)}" for k, v in row.params.items()),
            "updated": "" if last is None else _ago(now - last),
        }
        for name in names:
            point = points.get(name)
            if point is None:
                entry[name] = ""
            else:
                step = "" if point.step is None else f" @{point.step}"
                entry[name] = f"{_cell(point.value)}{step}"
        table.append(entry)
    return table


def _ago(seconds: float) -> str:
    """Return how long ago, in whole seconds, minutes or hours.

    Examples:
        >>> _ago(4.2), _ago(600), _ago(7300)
        ('4s ago', '10m ago', '2h ago')

    """
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(0, int(seconds))}s ago"


def _rendered(rows: list[dict[str, Any]], lines: list[str]) -> Group:
    """Return the first line, ``rows`` as a rich table (if any), then the other lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for column in rows[0] if rows else []:
        table.add_column(column, no_wrap=column == "run")
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    parts: list[Text | Table] = [Text(lines[0]), *([table] if rows else [])]
    return Group(*parts, *(Text(line) for line in lines[1:]))


@contextlib.contextmanager
def _ctrl_c_ends() -> Iterator[None]:
    """Let Ctrl-C end the block quietly: the normal way to stop watching, not an interruption."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
