"""The ``assay`` command: run sweeps, query their status and results, plot, manage the cache.

Errors print as one line (``assay: error: ...``) unless ``--debug`` is given, in which case
the traceback is shown.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ._index import STATUSES, ResultsIndex
from ._interrupt import STOP_REQUESTED
from ._results import Results

#: Backend names accepted by ``assay run --backend``, mapped to the registered class names.
BACKENDS = {
    "inline": "Cached",
    "thread": "ThreadPool",
    "process": "ProcessPool",
    "local": "LocalProcess",
    "slurm": "Slurm",
    "auto": "Auto",
}


class UsageError(ValueError):
    """A command-line argument that cannot be used; printed as one line."""


def parse_value(text: str) -> Any:
    """Read a command-line value: JSON when it parses (numbers, true, null, lists), else a string.

    Example:
        >>> parse_value("1e3"), parse_value("true"), parse_value("adam"), parse_value("[1, 2]")
        (1000.0, True, 'adam', [1, 2])

    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``key=value`` on the first ``=``, with an error naming the option."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """Read ``--grid key=v1,v2`` options into grid axes.

    Each value is read by :func:`parse_value`; commas inside a JSON list, object or string
    belong to the value (``layers=[64, 64],[128]`` is two values).

    Example:
        >>> parse_grid(["n=1e3,1e4", "method=a,b"])
        {'n': [1000.0, 10000.0], 'method': ['a', 'b']}

    """
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_assignment(item, "--grid")
        if key in axes:
            raise UsageError(f"--grid {item!r}: parameter {key!r} given twice")
        parts = _split_values(values)
        if any(not part.strip() for part in parts):
            # most often an unset shell variable (--grid n=$SIZES): never sweep over ""
            raise UsageError(
                f'--grid {item!r}: an empty value; expected KEY=V1,V2,... (write "" for '
                "the empty string)"
            )
        axes[key] = [parse_value(v) for v in parts]
    return axes


def _split_values(text: str) -> list[str]:
    """Split ``text`` on the commas outside JSON brackets, braces and double-quoted strings.

    Example:
        >>> _split_values('a,[1, 2],{"k": 1},"x,y"')
        ['a', '[1, 2]', '{"k": 1}', '"x,y"']

    """
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, char in enumerate(text):
        if quoted:  # inside a JSON string: only its closing (unescaped) quote matters
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)  # a stray bracket is text, not a reason to fail
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


# ---------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace) -> int:
    from assay_ops import import_operation

    from ._experiment import CodeChangedError, Experiment
    from ._space import grid

    _look_in_current_folder()
    operation = import_operation(args.operation)  # a module exiting at import: ImportError
    scope = dict(parse_assignment(d, "-D") for d in args.define)
    backend: dict[str, Any] = {"backend": BACKENDS[args.backend]}
    if args.max_jobs is not None:
        backend["max_jobs"] = args.max_jobs
    experiment = Experiment(
        args.name or operation.name,
        operation,
        params=grid(**parse_grid(args.grid)),
        replicates=args.replicates,
        seed=args.seed,
        scope={k: parse_value(v) for k, v in scope.items()},
        backend=backend,
        folder=args.folder,
    )
    try:
        results = experiment.run(retry_failed=args.retry_failed, on_code_change=args.on_code_change)
    except CodeChangedError as error:  # the same advice, in this command's option names
        print(
            f"assay: error: CodeChangedError: {error.what}; pass --on-code-change rerun to run "
            "them again or --on-code-change keep to keep their results",
            file=sys.stderr,
        )
        return 1
    if not experiment._show() and experiment.last_summary is not None:
        # Without a terminal there is no bar and the library stays quiet; the command still
        # says what it did (a batch job's log).
        print(experiment.last_summary.line(experiment.name), file=sys.stderr)
    return 0 if not results.counts().get("failed") else 1


def _look_in_current_folder() -> None:
    """Let ``module:operation`` refs name modules of the current folder, as ``python -m`` does.

    A console script starts with its own folder first on ``sys.path``, not the current one, so
    ``assay run train:sweep`` next to ``train.py`` would not find it. Worker processes inherit
    the path (pools) or start in the same folder with ``python -m`` (submitit, Slurm).
    """
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def _cmd_status(args: argparse.Namespace) -> int:
    with ResultsIndex(args.folder, create=False) as index:
        counts = index.status_counts()
        info = index.get_meta("experiment", {})
    total = sum(counts.values())
    if info:
        print(f"experiment {info.get('name')!r}: operation {info.get('operation')}")
    parts = [f"{status} {counts.get(status, 0)}" for status in STATUSES]
    print(f"{total} runs: " + ", ".join(parts))
    return 0


def _cmd_results(args: argparse.Namespace) -> int:
    if args.by and not args.summary:  # silently printing the whole table would hide the typo
        raise UsageError(
            f"--by {args.by[0]} needs --summary METRIC: it groups the summary of a metric"
        )
    results = Results.load(args.folder)
    rows = results.summary(args.summary, by=args.by or None) if args.summary else results.table()
    if args.json:
        print(json.dumps([_json_safe(r) for r in rows], indent=1))
    elif args.csv:
        print(_csv(rows), end="")
    else:
        print_table(rows, title=f"{len(results)} runs in {args.folder}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    path = Results.load(args.folder).plot(args.metric, x=args.x, hue=args.hue, path=args.out)
    print(f"plot written to {path}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from ._folder import cache_clear, cache_info

    if args.action == "info":
        for key, value in cache_info(args.folder).items():
            print(f"{key}: {value}")
    else:
        removed = cache_clear(args.folder)
        print(f"cleared the cache and results index of {args.folder} ({removed} files removed)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    run_demo(folder=args.folder, replicates=args.replicates, max_jobs=args.max_jobs)
    return 0


# ---------------------------------------------------------------- output helpers


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    # NaN (the std of a single run) and the infinities are not JSON (json.dumps would write
    # NaN and Infinity, which strict parsers refuse): write null
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
            )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}"
        # a whole float keeps its point: 1.0 and the int 1 are different values (and runs)
        return text if any(c in text for c in ".einaf") else f"{text}.0"
    return str(value)


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print dict rows as a table (rich), columns in the order of the first row."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column, justify="right" if _numeric(rows, column) else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    Console(width=max(100, len(rows[0]) * 14) if rows else 100).print(table)


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    return all(_is_number(r.get(column)) for r in rows)


def _is_number(value: Any) -> bool:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return True
    try:
        float(value)  # numbers already formatted as text align like numbers
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``assay`` command."""
    parser = argparse.ArgumentParser(
        prog="assay", description="Run parameter sweeps and look at their results."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an operation over a parameter grid")
    run.add_argument("operation", help="the operation, as module:name")
    run.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis")
    run.add_argument("--replicates", type=int, default=1, help="runs per grid point (default 1)")
    run.add_argument(
        "--backend", choices=sorted(BACKENDS), default="inline", help="where runs execute"
    )
    run.add_argument(
        "--max-jobs", type=int, default=None, help="worker or job limit of the backend"
    )
    run.add_argument("--folder", required=True, help="the experiment folder")
    run.add_argument("--name", default=None, help="experiment name (default: the operation's)")
    run.add_argument(
        "--seed", type=int, default=None, help="root seed (default: the fixed default)"
    )
    run.add_argument(
        "-D", "--define", action="append", default=[], metavar="KEY=VALUE", help="scope value"
    )
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument(
        "--on-code-change",
        choices=["error", "rerun", "keep"],
        default="error",
        help="when the operation's code changed since the folder was made",
    )
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="count the runs of an experiment folder by status")
    status.add_argument("folder")
    status.set_defaults(func=_cmd_status)

    results = sub.add_parser("results", help="print the runs of an experiment folder")
    results.add_argument("folder")
    fmt = results.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    results.add_argument("--summary", metavar="METRIC", help="mean/std/count of METRIC per point")
    results.add_argument(
        "--by", action="append", metavar="PARAM", help="group the summary by PARAM (with --summary)"
    )
    results.set_defaults(func=_cmd_results)

    plot = sub.add_parser("plot", help="plot a metric against a parameter (PNG)")
    plot.add_argument("folder")
    plot.add_argument("metric")
    plot.add_argument("--x", required=True, metavar="PARAM", help="the parameter on the x axis")
    plot.add_argument("--hue", metavar="PARAM", help="one line per value of PARAM")
    plot.add_argument("--out", metavar="PNG", help="where to write the plot")
    plot.set_defaults(func=_cmd_plot)

    cache = sub.add_parser("cache", help="inspect or clear the cache of an experiment folder")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("folder")
    cache.set_defaults(func=_cmd_cache)

    demo = sub.add_parser("demo", help="estimate pi by Monte Carlo on the process pool")
    demo.add_argument("--folder", default="assay-demo", help="where to keep the runs")
    demo.add_argument("--replicates", type=int, default=8, help="runs per sample size")
    demo.add_argument("--max-jobs", type=int, default=None, help="worker processes")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``assay`` command; return the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with _InterruptWatch() as watch:
        try:
            status: int = args.func(args)
        except KeyboardInterrupt:
            return _interrupted()
        except Exception as error:
            # Ctrl-C reaches the pool's workers too: the error a dying worker causes (a broken
            # pool) can surface before the interrupt itself. It is still an interruption.
            if watch.seen:
                return _interrupted()
            if args.debug:
                raise
            print(f"assay: error: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
            return 1
    if watch.seen:  # the interrupt was swallowed and the command ran to its end anyway
        return _interrupted()
    return status


def one_line(error: BaseException) -> str:
    """Return the message of ``error`` as one line that still says what was wrong.

    A pydantic validation error's first line only counts the errors ("1 validation error for
    Backend"); its errors are listed field by field instead. Other messages keep their first
    line.

    Example:
        >>> one_line(KeyError("no metric 'loss'"))
        "no metric 'loss'"

    """
    errors = getattr(error, "errors", None)
    if type(error).__name__ == "ValidationError" and callable(errors):
        parts = []
        for item in errors():
            where = ".".join(str(part) for part in item.get("loc", ()))
            got = repr(item.get("input"))
            got = got if len(got) <= 80 else got[:77] + "..."
            parts.append(f"{where + ': ' if where else ''}{item.get('msg')} (got {got})")
        return f"{getattr(error, 'title', 'value')}: " + "; ".join(parts)
    # str() of a KeyError is the repr of its message: quoted, escapes doubled
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    return text.splitlines()[0] if text else ""


def _interrupted() -> int:
    print("assay: interrupted; completed runs are kept, run again to resume", file=sys.stderr)
    return 130


class _InterruptWatch:
    """Notes whether SIGINT arrived while a command ran; SIGINT still raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        STOP_REQUESTED.set()  # in case this exception is swallowed (see _interrupt)
        raise KeyboardInterrupt

    def __enter__(self) -> _InterruptWatch:
        STOP_REQUESTED.clear()
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        STOP_REQUESTED.clear()


def entry_point() -> None:
    """Console-script entry point: exit with the status of :func:`main`."""
    sys.exit(main())
