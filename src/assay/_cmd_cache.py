"""``assay cache``: info, compact, migrate, clear, prune and explain the cache of a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cliargs import UsageError, plural
from ._table import print_cache_table, print_pruned


def _add_cache_folder(action: argparse.ArgumentParser) -> None:
    """Add the FOLDER argument of a cache action that takes either kind of folder."""
    action.add_argument(
        "folder", metavar="FOLDER", help="an experiment folder, or a step cache folder"
    )


def add_cache_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``assay cache`` and its actions to the subcommands ``sub``."""
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
    _add_cache_folder(info)
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
    _add_cache_folder(compact)
    migrate = actions.add_parser(
        "migrate",
        help="pack entries of the older one-file-per-entry layout into segments",
        description=(
            "Verify each entry of the older layout (cache/<uid>.pkl and .npy in a code "
            "version folder), pack it into a segment with its age, flush, then delete the old "
            "files and the locks/ folder. A corrupt entry is named and left in place."
        ),
    )
    _add_cache_folder(migrate)
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
    _add_cache_folder(prune)
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
    _add_cache_folder(explain)
    cache.set_defaults(func=_cmd_cache)


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
    from ._cachefolder import describe_cache, locate_cache
    from ._folder import cache_info

    root = Path(args.folder)
    cache, experiment = locate_cache(root, "describes")  # refuses a folder of another tool
    if experiment == root:
        for key, value in cache_info(root).items():
            print(f"{key}: {value}")
    infos = describe_cache(cache)
    print_cache_table(cache, infos, f"cache of {args.folder}")
    legacy = sum(info.legacy for info in infos)
    if legacy:
        print(
            f"{plural(legacy, 'entry', 'entries')} in the older layout (one file per entry, "
            f"in cache/): `assay cache migrate {args.folder}` packs them into segments"
        )
    return 0


def _cache_compact(args: argparse.Namespace) -> int:
    from ._cachefolder import compact_cache, locate_cache
    from ._units import format_size

    cache, _ = locate_cache(Path(args.folder), "compacts")  # refuses a folder of another tool
    reports = compact_cache(cache)
    merged = sum(len(report.merged) for report in reports)
    written = sum(1 for report in reports if report.segment)
    freed = format_size(sum(report.freed for report in reports))
    if merged:
        print(f"compacted {plural(merged, 'segment')} into {written}, freeing {freed}")
    else:
        print(f"nothing to compact in {args.folder}")
    arrays = sum(report.arrays_removed for report in reports)
    if arrays:
        print(f"removed {plural(arrays, 'array file')} that no entry referred to")
    for report in reports:
        for uid in report.corrupt:
            print(
                f"assay: warning: {report.folder}: item {uid}: corrupt entry dropped",
                file=sys.stderr,
            )
    live = sum(report.live for report in reports)
    if live:
        print(
            f"left {plural(live, 'segment')} of processes still writing alone; compact "
            "again once they are done"
        )
    return 0


def _cache_migrate(args: argparse.Namespace) -> int:
    from ._cachefolder import locate_cache, migrate_cache

    cache, _ = locate_cache(Path(args.folder), "migrates")  # refuses a folder of another tool
    reports = migrate_cache(cache)
    migrated = sum(len(report.migrated) for report in reports)
    shadowed = sum(len(report.shadowed) for report in reports)
    if migrated or shadowed:
        print(
            f"packed {plural(migrated, 'entry', 'entries')} of the older layout into segments "
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
    from ._units import format_size

    targets = clear_targets(args.folder)  # refuses a folder that assay did not create
    if not targets:
        print(f"nothing to clear in {args.folder}")
        return 0
    files = sum(count for _, count, _ in targets)
    size = format_size(sum(size for _, _, size in targets))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"cache clear would delete {plural(files, 'file')} ({size}) of {args.folder} "
                "and there is no terminal to confirm on; pass --yes to delete them"
            )
        print(f"assay cache clear deletes, in {args.folder}:")
        for path, count, total in targets:
            name = path.name + ("/" if path.is_dir() else "")
            print(f"  {name:<20} {plural(count, 'file'):>12}  {format_size(total)}")
        try:
            answer = input(f"delete {plural(files, 'file')} ({size})? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = cache_clear(args.folder)
    print(f"cleared the cache and results index of {args.folder} ({removed} files removed)")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    from ._prune import plan_prune
    from ._units import format_size

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
        print_pruned(plan.folder, deleted, f"deleted from {args.folder}")
        size = format_size(sum(entry.bytes for entry in deleted))
        print(f"deleted {plural(len(deleted), 'entry', 'entries')}, {size}")
        if len(deleted) < len(plan):
            print(
                f"left {plural(len(plan) - len(deleted), 'entry', 'entries')} alone: written "
                "again, removed or being written since the plan was made"
            )
    else:
        print_pruned(plan.folder, plan.entries, f"would delete from {args.folder}")
        entries = plural(len(plan), "entry", "entries")
        print(f"{entries}, {format_size(plan.bytes)} of the {cache} in the cache")
        if plan.reclaim_bytes:
            print(
                f"compacting also frees {format_size(plan.reclaim_bytes)} of superseded or "
                "cleared entries"
            )
        print("dry run: pass --yes to delete")
    if plan.busy:
        print(
            f"left {plural(plan.busy, 'entry', 'entries')} alone: in segments that running "
            "processes still write; prune again once they are done"
        )
    if plan.kept:
        print(
            f"kept {plural(len(plan.kept), 'entry', 'entries')} of runs in the results "
            "index; pass --include-indexed to delete them too"
        )
    return 0


def _duration(text: str) -> float:
    from ._units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _size(text: str) -> int:
    from ._units import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
