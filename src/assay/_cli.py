"""The ``assay`` command: run sweeps, query status and results, plot, reproduce, manage caches.

Errors print as one line (``assay: error: ...``) unless ``--debug`` is given, in which case
the traceback is shown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._clihelp import HelpFormatter, add_global_options, finish_parser
from ._index import STATUSES, ResultsIndex
from ._interrupt import STOP_REQUESTED
from ._results import Results

if TYPE_CHECKING:
    from ._prune import FolderInfo, PruneEntry

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

    Examples:
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

    Each value is read by ``parse_value``; commas inside a JSON list, object or string
    belong to the value (``layers=[64, 64],[128]`` is two values).

    Examples:
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

    Examples:
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
    from assay_steps import CodeChangedError

    from ._experiment import Experiment
    from ._space import grid

    _look_in_current_folder()
    backend = _run_backend(args)  # bad job settings are refused before anything is imported
    operation = import_operation(args.operation)  # a module exiting at import: ImportError
    scope = dict(parse_assignment(d, "-D") for d in args.define)
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
        results = experiment.run(
            retry_failed=args.retry_failed,
            on_code_change=args.on_code_change,
            max_failures=args.max_failures,
        )
    except CodeChangedError as error:  # the same advice, in this command's option names
        print(
            f"assay: error: CodeChangedError: {error.what}; pass --on-code-change rerun to run "
            "them again or --on-code-change keep to keep their results",
            file=sys.stderr,
        )
        return 1
    summary = experiment.last_summary
    if not experiment._show() and summary is not None:
        # Without a terminal there is no bar and the library stays quiet; the command still
        # says what it did (a batch job's log), and what did not succeed.
        print(summary.line(experiment.name), file=sys.stderr)
        for line in summary.report(experiment.name):
            print(line, file=sys.stderr)
    counts = results.counts()
    return 1 if any(counts.get(s) for s in ("failed", "timeout", "cancelled")) else 0


def _run_backend(args: argparse.Namespace) -> dict[str, Any]:
    """Return the backend dict of ``assay run``: --backend, --backend-config, job options."""
    from ._jobopts import backend_settings, option_fields, read_config

    config: dict[str, Any] = {}
    source = "--backend-config"
    if args.backend_config is not None:
        config = read_config(args.backend_config)
        source = f"--backend-config {args.backend_config}"
    named = config.pop("backend", None)
    # The file may name the backend as the option does ("slurm") or by its class ("Slurm").
    by_class = {cls.lower(): option for option, cls in BACKENDS.items()}
    if isinstance(named, str) and named.lower() in by_class:
        named = by_class[named.lower()]
    if named is not None and named not in BACKENDS:
        raise UsageError(
            f"{source}: key 'backend' = {named!r}; expected one of {', '.join(sorted(BACKENDS))}"
            f" (or its class: {', '.join(sorted(BACKENDS.values()))})"
        )
    name = args.backend or named or "inline"
    options = option_fields(args)
    backend = backend_settings(name, config, options, source)
    if args.max_jobs is not None:
        backend["max_jobs"] = args.max_jobs
    return backend


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
    with ResultsIndex(args.folder, read_only=True) as index:
        counts = index.status_counts()
        info = index.get_meta("experiment", {})
    total = sum(counts.values())
    if info:
        print(f"experiment {info.get('name')!r}: operation {info.get('operation')}")
    parts = [f"{status} {counts.get(status, 0)}" for status in STATUSES]
    print(f"{total} runs: " + ", ".join(parts))
    from ._status import print_resources, print_runs

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
    if args.json:
        print(json.dumps([_json_safe(r) for r in rows], indent=1, allow_nan=False))
    elif args.csv:
        print(_csv(rows), end="")
    else:
        print_table(rows, title=f"{len(results)} runs in {args.folder}")
    return 0


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


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from ._reproduce import reproduce

    _look_in_current_folder()
    report = reproduce(args.folder, args.run_id, keep=args.keep, timeout=args.timeout)
    for line in report.lines():
        print(line)
    for warning in report.warnings:
        print(f"assay: warning: {warning}", file=sys.stderr)
    if args.keep:
        print(f"the rerun's record and artifacts are in {args.keep}")
    return 0 if report.matches else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    from ._plot import default_path

    results = Results.load(args.folder)
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


def _cmd_cache(args: argparse.Namespace) -> int:
    actions = {
        "clear": _cache_clear,
        "prune": _cache_prune,
        "explain": _cache_explain,
        "info": _cache_info,
        "compact": _cache_compact,
        "migrate": _cache_migrate,
    }
    return actions[args.action](args)


def _cache_explain(args: argparse.Namespace) -> int:
    from ._explain import explain

    print(explain(args.folder))
    return 0


def _cache_info(args: argparse.Namespace) -> int:
    from ._folder import cache_info
    from ._prune import describe_cache, locate_cache

    root = Path(args.folder)
    cache, experiment = locate_cache(root, "describes")  # refuses a folder of another tool
    if experiment == root:
        for key, value in cache_info(root).items():
            print(f"{key}: {value}")
    infos = describe_cache(cache)
    _print_cache_table(cache, infos, f"cache of {args.folder}")
    legacy = sum(info.legacy for info in infos)
    if legacy:
        print(
            f"{_plural(legacy, 'entry', 'entries')} in the older layout (one file per entry, "
            f"in cache/): `assay cache migrate {args.folder}` packs them into segments"
        )
    return 0


def _print_cache_table(cache: Path, infos: Sequence[FolderInfo], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from ._prune import format_size

    base = Path(os.path.abspath(cache))
    rows = [
        (Path(info.folder).relative_to(base).as_posix(), [getattr(info, f) for f in _INFO_FIELDS])
        for info in infos
    ]
    if len(rows) > 1:
        rows.append(("all", [sum(column) for column in zip(*(v for _, v in rows), strict=True)]))
    caption = (
        "size: of the segments, then of the large array files; dead: bytes of superseded or "
        "cleared entries (assay cache compact frees them); older: entries of the older layout"
    )
    table = Table(title=title, caption=caption)
    columns = ["entries", "errors", "segments", "size", "arrays", "size", "dead", "older", "claims"]
    table.add_column("folder", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in rows:
        cells = [
            format_size(value) if field.endswith("bytes") else str(value)
            for field, value in zip(_INFO_FIELDS, values, strict=True)
        ]
        table.add_row(name, *cells)
    Console(width=max(100, max((len(name) for name, _ in rows), default=0) + 90)).print(table)


#: The fields of ``FolderInfo`` that the columns of ``assay cache info`` show, in order.
_INFO_FIELDS = (
    "entries",
    "errors",
    "segments",
    "segment_bytes",
    "arrays",
    "array_bytes",
    "dead_bytes",
    "legacy",
    "claims",
)


def _cache_compact(args: argparse.Namespace) -> int:
    from ._prune import compact_cache, format_size, locate_cache

    cache, _ = locate_cache(Path(args.folder), "compacts")  # refuses a folder of another tool
    reports = compact_cache(cache)
    merged = sum(len(report.merged) for report in reports)
    written = sum(1 for report in reports if report.segment)
    freed = format_size(sum(report.freed for report in reports))
    if merged:
        print(f"compacted {_plural(merged, 'segment')} into {written}, freeing {freed}")
    else:
        print(f"nothing to compact in {args.folder}")
    arrays = sum(report.arrays_removed for report in reports)
    if arrays:
        print(f"removed {_plural(arrays, 'array file')} that no entry referred to")
    for report in reports:
        for uid in report.corrupt:
            print(
                f"assay: warning: {report.folder}: item {uid}: corrupt entry dropped",
                file=sys.stderr,
            )
    live = sum(report.live for report in reports)
    if live:
        print(
            f"left {_plural(live, 'segment')} of processes still writing alone; compact "
            "again once they are done"
        )
    return 0


def _cache_migrate(args: argparse.Namespace) -> int:
    from ._prune import locate_cache, migrate_cache

    cache, _ = locate_cache(Path(args.folder), "migrates")  # refuses a folder of another tool
    reports = migrate_cache(cache)
    migrated = sum(len(report.migrated) for report in reports)
    shadowed = sum(len(report.shadowed) for report in reports)
    if migrated or shadowed:
        print(
            f"packed {_plural(migrated, 'entry', 'entries')} of the older layout into segments "
            f"in {args.folder}"
            + (f"; removed {shadowed} that newer entries replace" if shadowed else "")
        )
    elif not any(report.corrupt for report in reports):
        print(f"no entries of the older layout in {args.folder}")
    for report in reports:
        for _, why in report.corrupt:
            print(f"assay: warning: left in place, not migrated: {why}", file=sys.stderr)
    busy = [report.folder for report in reports if report.busy]
    for folder in busy:
        print(
            f"assay: warning: {folder}: an older assay is computing there (fresh locks); "
            "not migrated, run the command again once it is done",
            file=sys.stderr,
        )
    return 1 if busy else 0


def _cache_clear(args: argparse.Namespace) -> int:
    from ._folder import cache_clear, clear_targets
    from ._prune import format_size

    targets = clear_targets(args.folder)  # refuses a folder that assay did not create
    if not targets:
        print(f"nothing to clear in {args.folder}")
        return 0
    files = sum(count for _, count, _ in targets)
    size = format_size(sum(size for _, _, size in targets))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"cache clear would delete {_plural(files, 'file')} ({size}) of {args.folder} "
                "and there is no terminal to confirm on; pass --yes to delete them"
            )
        print(f"assay cache clear deletes, in {args.folder}:")
        for path, count, total in targets:
            name = path.name + ("/" if path.is_dir() else "")
            print(f"  {name:<20} {_plural(count, 'file'):>12}  {format_size(total)}")
        try:
            answer = input(f"delete {_plural(files, 'file')} ({size})? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = cache_clear(args.folder)
    print(f"cleared the cache and results index of {args.folder} ({removed} files removed)")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    from ._prune import format_size, plan_prune

    if args.older_than is None and args.max_size is None and not args.stale_code:
        raise UsageError(
            "cache prune needs what to delete: --older-than DURATION, --max-size SIZE "
            "or --stale-code"
        )
    plan = plan_prune(
        args.folder,
        older_than=args.older_than,
        max_size=args.max_size,
        stale_code=args.stale_code,
        include_indexed=args.include_indexed,
    )
    cache = format_size(plan.cache_bytes)
    if not plan.entries:
        print(f"nothing to prune in {args.folder} (the cache holds {cache})")
    elif args.yes:
        deleted = plan.apply()
        _print_pruned(plan.folder, deleted, f"deleted from {args.folder}")
        size = format_size(sum(entry.bytes for entry in deleted))
        print(f"deleted {_plural(len(deleted), 'entry', 'entries')}, {size}")
        if len(deleted) < len(plan):
            print(
                f"left {_plural(len(plan) - len(deleted), 'entry', 'entries')} alone: written "
                "again, removed or being written since the plan was made"
            )
    else:
        _print_pruned(plan.folder, plan.entries, f"would delete from {args.folder}")
        entries = _plural(len(plan), "entry", "entries")
        print(f"{entries}, {format_size(plan.bytes)} of the {cache} in the cache")
        if plan.reclaim_bytes:
            print(
                f"compacting also frees {format_size(plan.reclaim_bytes)} of superseded or "
                "cleared entries"
            )
        print("dry run: pass --yes to delete")
    if plan.busy:
        print(
            f"left {_plural(plan.busy, 'entry', 'entries')} alone: in segments that running "
            "processes still write; prune again once they are done"
        )
    if plan.kept:
        print(
            f"kept {_plural(len(plan.kept), 'entry', 'entries')} of runs in the results "
            "index; pass --include-indexed to delete them too"
        )
    return 0


def _print_pruned(folder: Path, entries: Sequence[PruneEntry], title: str) -> None:
    import datetime

    from rich.console import Console
    from rich.table import Table

    from ._prune import format_size

    paths = [
        entry.path.relative_to(folder).as_posix()
        + ("/" if entry.kind in ("version", "trash") else "")
        for entry in entries
    ]
    table = Table(title=title)
    table.add_column("path", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("modified")
    table.add_column("reason")
    for path, entry in zip(paths, entries, strict=True):
        modified = datetime.datetime.fromtimestamp(entry.modified).strftime("%Y-%m-%d %H:%M")
        table.add_row(path, format_size(entry.bytes), modified, entry.reason)
    reasons = max((len(entry.reason) for entry in entries), default=0)
    width = max((len(p) for p in paths), default=0) + reasons + 45
    Console(width=max(100, width)).print(table)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _duration(text: str) -> float:
    from ._prune import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _size(text: str) -> int:
    from ._prune import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    run_demo(folder=args.folder, replicates=args.replicates, max_jobs=args.max_jobs)
    return 0


# ---------------------------------------------------------------- output helpers


def _spelled(value: Any) -> Any:
    """Return ``value`` with every NaN and infinity, at any depth, as the string JSON lacks.

    NaN (the std of a single run) and the infinities have no JSON literal (``json.dumps``
    writes a bare ``NaN``, which strict parsers refuse): ``--json`` and ``--csv`` write them
    as ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, in metrics and params alike (Python's
    ``float()`` reads them back).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_spelled(v) for v in value]
    if isinstance(value, dict):
        return {k: _spelled(v) for k, v in value.items()}
    return value


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _spelled(v) for k, v in row.items()}


#: A text cell starting with one of these is a formula to a spreadsheet (OWASP's list): it is
#: written after a single quote, which the spreadsheet shows as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, int)):  # numbers, negative ones included, stay numbers
        return str(value)
    if isinstance(value, float):
        return str(_spelled(value))
    if isinstance(value, (list, dict)):  # as JSON: starts with [ or {
        return json.dumps(_spelled(value), allow_nan=False)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_field(text: str) -> str:
    # Quoted when it holds a separator, a quote or a line break (the csv module leaves a
    # carriage return unquoted when lines end in a newline, which splits the row for readers).
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    names = list(rows[0])
    lines = [[_csv_text(name) for name in names]]
    lines += [[_csv_text(row.get(name)) for name in names] for row in rows]
    return "".join(",".join(_csv_field(cell) for cell in line) + "\n" for line in lines)


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
        prog="assay",
        description="Run parameter sweeps and look at their results.",
        formatter_class=HelpFormatter,
    )
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an operation over a parameter grid")
    run.add_argument(
        "operation", help="the operation, as module:name (the @operation `name` in module.py)"
    )
    run.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a grid axis: each value is read as JSON when it parses (1e-3, true, null, "
        '[64, 64], "2"), else as text; repeat for more axes (their product is swept)',
    )
    run.add_argument("--replicates", type=int, default=1, help="runs per grid point (default 1)")
    run.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=None,
        help="where runs execute (default inline, or the backend of --backend-config)",
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
        "-D",
        "--define",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param_scope value set around every run, read as JSON when it parses, else as "
        "text (repeatable)",
    )
    run.add_argument(
        "--retry-failed", action="store_true", help="run failed and timed-out runs again"
    )
    run.add_argument(
        "--max-failures",
        type=int,
        metavar="N",
        help="stop once N runs failed or timed out (the runs left are cancelled; run again "
        "to resume them)",
    )
    run.add_argument(
        "--on-code-change",
        choices=["error", "rerun", "keep"],
        default="error",
        help="when the operation's code changed since the folder was made",
    )
    from ._jobopts import add_job_arguments

    add_job_arguments(run)
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser(
        "status",
        help="count the runs of an experiment folder by status; list those not done",
        description=(
            "Count the runs by status, then list the runs not done with their state (pending, "
            "queued, running: the scheduler's state of their job) and job id. With "
            "--resources, the most memory and time the runs used, and the --mem and --time "
            "to ask for next."
        ),
    )
    status.add_argument("folder")
    status.add_argument("--all", action="store_true", help="list every run, done ones too")
    status.add_argument(
        "--resources",
        action="store_true",
        help="print the runs' peak memory, CPU and wall time, and suggest --mem and --time",
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
    plot.add_argument("--x", required=True, metavar="PARAM", help="the parameter on the x axis")
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

    cache = sub.add_parser(
        "cache", help="inspect, compact, migrate, prune or clear the cache of a folder"
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser(
        "info",
        help="count the runs and the cache's entries, segments, arrays and sizes",
        description=(
            "For each step and code version of the cache: its entries and cached errors, its "
            "segment files and large array files with their sizes, the bytes that serve "
            "nothing (superseded or cleared entries: `assay cache compact` frees them), "
            "entries still in the older one-file-per-entry layout (`assay cache migrate` "
            "packs them) and the chunks of items being computed now. For an experiment "
            "folder, its runs by status first. Nothing is changed."
        ),
    )
    info.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )
    compact = actions.add_parser(
        "compact",
        help="merge finished segment files into one, dropping superseded and cleared entries",
        description=(
            "In each step and code version of the cache, merge the segment files whose "
            "writers are finished into one new segment that keeps the newest entry of each "
            "item, and delete array files that no entry refers to any more. Segments that a "
            "running process still writes are left alone, so it is safe while sweeps run. "
            "The new segment is complete and flushed before any old one is deleted: an "
            "interrupted compaction loses nothing."
        ),
    )
    compact.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )
    migrate = actions.add_parser(
        "migrate",
        help="pack entries of the older one-file-per-entry layout into segments",
        description=(
            "Verify each entry of the older layout (cache/<uid>.pkl and .npy in a code "
            "version folder), pack it into a segment with its age, flush, then delete the old "
            "files and the locks/ folder. A corrupt entry is named and left in place."
        ),
    )
    migrate.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )
    clear = actions.add_parser(
        "clear",
        help="delete the cache, run folders and results index (asks first)",
        description=(
            "Delete cache/, runs/ and index.sqlite of an experiment folder; other files (plots, "
            "your own) are kept. Only a folder that assay created (its .assay-experiment marker) "
            "is cleared: another tool's index.sqlite, runs/ or cache/ is never touched. On a "
            "terminal it lists what goes and asks; without one, pass --yes."
        ),
    )
    clear.add_argument("folder", metavar="FOLDER", help="the experiment folder")
    clear.add_argument("--yes", action="store_true", help="delete without asking")
    prune = actions.add_parser(
        "prune",
        help="delete old, surplus or stale-code cache entries (a dry run unless --yes)",
        description=(
            "List the cache entries that the criteria choose, with their size, and delete them "
            "with --yes. Entries of runs that the results index holds as finished are kept "
            "unless --include-indexed. FOLDER is an experiment folder or a step cache folder "
            "that assay created."
        ),
    )
    prune.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )
    prune.add_argument(
        "--older-than",
        type=_duration,
        metavar="DURATION",
        help="entries last written longer ago than DURATION (30d, 12h, 90m, 2w)",
    )
    prune.add_argument(
        "--max-size",
        type=_size,
        metavar="SIZE",
        help="the oldest entries, until the cache holds at most SIZE (500M, 2G, 10k: powers "
        "of 1024)",
    )
    prune.add_argument(
        "--stale-code",
        action="store_true",
        help="the folders of code versions that neither the current code nor what it keeps uses",
    )
    prune.add_argument(
        "--include-indexed",
        action="store_true",
        help="delete entries of runs in the results index too (kept by default)",
    )
    prune.add_argument("--yes", action="store_true", help="delete (default: only list)")
    explain = actions.add_parser(
        "explain",
        help="what the cached results were computed from: code versions, functions, files",
        description=(
            "For an experiment folder: the operation, what its code fingerprint covers now "
            "(functions with file and line, references it cannot follow) and the runs of each "
            "recorded code. For every step folder of the cache: its code versions, the current "
            "one, the one it keeps, and the functions each covered."
        ),
    )
    explain.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )
    cache.set_defaults(func=_cmd_cache)

    again = sub.add_parser(
        "reproduce",
        help="rerun one run from its record and compare its metrics bit for bit",
        description=(
            "Rerun one run of an experiment folder in a fresh Python process, from its stored "
            "record alone (operation, params, seeds; context and scope of the experiment), "
            "and compare every metric bit for bit. Exits 0 when all match, 1 listing each "
            "difference. Warns when the code, the git commit or the uncommitted changes "
            "differ from the run's. The rerun writes into a temporary folder: nothing stored "
            "in the experiment folder changes."
        ),
    )
    again.add_argument("folder", help="the experiment folder")
    again.add_argument("run_id", metavar="RUN_ID", help="the run's id, or a prefix only it has")
    again.add_argument(
        "--keep", metavar="DIR", help="keep the rerun's record and artifacts in DIR (new or empty)"
    )
    again.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop the rerun after SECONDS"
    )
    again.set_defaults(func=_cmd_reproduce)

    demo = sub.add_parser("demo", help="estimate pi by Monte Carlo on the process pool")
    demo.add_argument("--folder", default="assay-demo", help="where to keep the runs")
    demo.add_argument("--replicates", type=int, default=8, help="runs per sample size")
    demo.add_argument("--max-jobs", type=int, default=None, help="worker processes")
    demo.set_defaults(func=_cmd_demo)
    finish_parser(parser)
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

    Examples:
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
    """Console-script entry point: exit with the status of ``main``."""
    sys.exit(main())
