"""Commands that read an experiment folder: ``assay status``, ``logs``, ``results``, ``plot``."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ._cliargs import UsageError
from ._index import ResultsIndex
from ._results import Results
from ._schema import STATUSES
from ._table import csv_rows, json_safe, print_table


def add_results_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``assay status``, ``logs``, ``results`` and ``plot`` to the subcommands ``sub``."""
    status = sub.add_parser(
        "status",
        help="count the runs of an experiment folder by status; list those not done",
        description=(
            "Count the runs by status, then list the runs not done with their state (pending, "
            "queued, running: the scheduler's state of their job) and job id. With "
            "--resources, the most memory and time the runs used, and the --mem and --time "
            "to ask for next. With --watch, a live table of the pending runs and the latest "
            "values of the metrics they stream, until no run is pending."
        ),
    )
    status.add_argument("folder")
    status.add_argument("--all", action="store_true", help="list every run, done ones too")
    status.add_argument(
        "--resources",
        action="store_true",
        help="print the runs' peak memory, CPU and wall time, and suggest --mem and --time",
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="follow the pending runs live: their state and the latest values of the metrics "
        "they stream, refreshed until no run is pending (Ctrl-C stops watching)",
    )
    status.add_argument(
        "--interval",
        type=_seconds,
        metavar="S",
        help="seconds between two refreshes of --watch (default 2)",
    )
    status.set_defaults(func=_cmd_status)

    logs = sub.add_parser("logs", help="print the stdout and stderr of a run's job")
    logs.add_argument("folder")
    logs.add_argument("run_id", metavar="RUN_ID", help="the run's id, or a prefix only it has")
    logs.add_argument("--path", action="store_true", help="print the log paths only")
    logs.set_defaults(func=_cmd_logs)

    results = sub.add_parser("results", help="print the runs of an experiment folder")
    results.add_argument("folder")
    fmt = results.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    results.add_argument("--summary", metavar="METRIC", help="mean/std/count of METRIC per point")
    results.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only the runs of STATUS (comma-separated or repeated), e.g. failed,timeout",
    )
    results.add_argument(
        "--by", action="append", metavar="PARAM", help="group the summary by PARAM (with --summary)"
    )
    results.add_argument(
        "--read",
        action="store_true",
        help="add a read:NAME column for each parameter the runs read through param_scope "
        "that is not swept (scope values, defaults), with the value each run read",
    )
    results.set_defaults(func=_cmd_results)

    plot = sub.add_parser("plot", help="plot a metric against a parameter (PNG)")
    plot.add_argument("folder")
    plot.add_argument("metric")
    axis = plot.add_mutually_exclusive_group(required=True)
    axis.add_argument("--x", metavar="PARAM", help="the parameter on the x axis")
    axis.add_argument(
        "--trials",
        action="store_true",
        help="a search's metric against the trial number, with the best-so-far line",
    )
    plot.add_argument("--hue", metavar="PARAM", help="one line per value of PARAM")
    plot.add_argument(
        "--logx",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a log (--logx) or linear (--no-logx) x axis; default log when the values are "
        "positive numbers spanning more than two decades",
    )
    plot.add_argument("--logy", action="store_true", help="a log y axis")
    plot.add_argument(
        "--title", metavar="TEXT", help="the title (default: experiment, metric, x, hue, runs)"
    )
    plot.add_argument(
        "--out",
        metavar="PNG",
        help="where to write the plot (default: FOLDER/plots/METRIC_by_PARAM[_per_HUE].png)",
    )
    plot.set_defaults(func=_cmd_plot)


def _seconds(text: str) -> float:
    """Read ``--interval``: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def _cmd_status(args: argparse.Namespace) -> int:
    if args.interval is not None and not args.watch:
        raise UsageError(f"--interval {args.interval}: only with --watch")
    with ResultsIndex(args.folder, read_only=True) as index:
        counts = index.status_counts()
        info = index.get_meta("experiment", {})
    if info:
        print(f"experiment {info.get('name')!r}: operation {info.get('operation')}")
    from ._status import print_resources, print_runs
    from ._statuswatch import WATCH_INTERVAL, counts_line, watch_runs

    if args.watch:  # the counts are the watch's title, as they change
        interval = WATCH_INTERVAL if args.interval is None else args.interval
        watch_runs(args.folder, info.get("config"), interval=interval, every=args.all)
    else:
        print(counts_line(counts))
        print_runs(args.folder, info.get("config"), every=args.all)
    if args.resources:
        print_resources(args.folder)
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from ._status import print_logs

    return print_logs(args.folder, args.run_id, paths_only=args.path)


def _cmd_results(args: argparse.Namespace) -> int:
    if args.by and not args.summary:  # silently printing the whole table would hide the typo
        raise UsageError(
            f"--by {args.by[0]} needs --summary METRIC: it groups the summary of a metric"
        )
    if args.read and args.summary:
        raise UsageError("--read adds columns to the table of runs; it does not go with --summary")
    results = Results.load(args.folder)
    if args.status:
        wanted = [s.strip() for item in args.status for s in item.split(",") if s.strip()]
        for status in wanted:
            if status not in STATUSES:
                raise UsageError(f"--status {status!r}: expected one of {', '.join(STATUSES)}")
        results = results.with_status(*wanted)
    rows = results.summary(args.summary, by=args.by or None) if args.summary else results.table()
    if args.read:
        rows = _with_reads(results, rows)
    if not args.summary:
        rows = _with_best(results, rows, marker=None if args.json or args.csv else "*")
    if args.json:
        print(json.dumps([json_safe(r) for r in rows], indent=1, allow_nan=False))
    elif args.csv:
        print(csv_rows(rows), end="")
    else:
        print_table(rows, title=f"{len(results)} runs in {args.folder}")
    return 0


def _with_best(
    results: Results, rows: list[dict[str, Any]], marker: str | None
) -> list[dict[str, Any]]:
    """Add a ``best`` column marking a search's best run (``marker``, or True in data).

    Rows of a folder that holds no search, or whose trials recorded no value yet, are
    returned as they are.
    """
    from ._best import search_best

    found = search_best(results)
    if found is None or found[1] is None:
        return rows
    best = found[1].run_id
    if marker is None:
        return [{**row, "best": row["run_id"] == best} for row in rows]
    return [{**row, "best": marker if row["run_id"] == best else ""} for row in rows]


def _with_reads(results: Results, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add a ``read:<name>`` column per parameter the runs read that is not swept, after theirs.

    The value is what the run read through ``param_scope`` (empty when it did not read it).
    """
    reads = {record.run_id: record.params_read for record in results.iter_records()}
    swept = set(results.param_names)
    names = list(dict.fromkeys(n for read in reads.values() for n in read if n not in swept))
    at = 1 + len(results.param_names)  # run_id, then the params, then the reads
    out = []
    for row in rows:
        read = reads.get(row["run_id"], {})
        items = list(row.items())
        columns = [(f"read:{n}", _plain(read[n]) if n in read else None) for n in names]
        out.append(dict(items[:at] + columns + items[at:]))
    return out


def _plain(value: Any) -> Any:
    """Return ``value`` if it is JSON data (as tables, CSV and JSON print it), else its repr."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalars
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _cmd_plot(args: argparse.Namespace) -> int:
    from ._plot import default_path

    results = Results.load(args.folder)
    if args.trials:
        if args.hue is not None or args.logx is not None:
            raise UsageError("--trials: the x axis is the trial number (no --hue, --logx)")
        out = args.out or default_path(results.folder, args.metric, "trial", None)
        results.plot_trials(args.metric, logy=args.logy, title=args.title, out=out)
        print(f"plot written to {out}")
        return 0
    out = args.out or default_path(results.folder, args.metric, args.x, args.hue)
    results.plot(
        args.metric,
        x=args.x,
        hue=args.hue,
        logx=args.logx,
        logy=args.logy,
        title=args.title,
        out=out,
    )
    print(f"plot written to {out}")
    return 0
