"""The commands that run operations: ``assay run``, ``assay reproduce`` and ``assay demo``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cliargs import (
    UsageError,
    look_in_current_folder,
    parse_assignment,
    parse_grid,
    parse_space,
    parse_value,
)


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``assay run`` to the subcommands ``sub``."""
    from ._jobopts import BACKENDS, add_job_arguments

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
    _add_search_arguments(run)
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
    add_job_arguments(run)
    run.set_defaults(func=_cmd_run)


def _add_search_arguments(run: argparse.ArgumentParser) -> None:
    """Add the options of an adaptive search (``--search N`` and what it optimises)."""
    from ._search import PRUNERS, SAMPLERS

    search = run.add_argument_group(
        "adaptive search",
        "--search N runs N trials proposed by a sampler (Optuna; pip install 'assay[search]') "
        "instead of a grid; a killed search resumes where it stopped",
    )
    search.add_argument("--search", type=int, metavar="N", help="trials to run")
    search.add_argument("--metric", help="the metric each trial is ranked by (its last value)")
    way = search.add_mutually_exclusive_group()
    way.add_argument(
        "--minimize", dest="direction", action="store_const", const="minimize",
        help="the lower the metric the better (default)",
    )  # fmt: skip
    way.add_argument(
        "--maximize", dest="direction", action="store_const", const="maximize",
        help="the higher the metric the better",
    )  # fmt: skip
    search.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=DIST",
        help="a searched parameter: uniform(LOW,HIGH), loguniform(LOW,HIGH), randint(LOW,HIGH), "
        "choice(V1,V2,...), or a fixed value (repeatable)",
    )
    search.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="default tpe")
    search.add_argument("--pruner", choices=PRUNERS, default=None, help="stop poor runs early")
    search.add_argument("--parallel", type=int, metavar="K", help="trials run at once")


def _params(args: argparse.Namespace) -> Any:
    """Return the parameter space of ``assay run``: a grid, or a search (``--search``)."""
    from ._search import search
    from ._space import grid

    if args.search is None:
        for option in ("metric", "direction", "parallel", "pruner"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option}: only with --search N")
        if args.space:
            raise UsageError("--space: only with --search N (a grid is --grid KEY=V1,V2)")
        return grid(**parse_grid(args.grid))
    if args.grid:
        raise UsageError("--grid with --search: a search's parameters are --space KEY=DIST")
    if args.metric is None:
        raise UsageError("--search needs --metric NAME: the metric each trial is ranked by")
    try:
        return search(
            args.search,
            metric=args.metric,
            direction=args.direction or "minimize",
            sampler=args.sampler,
            pruner=args.pruner,
            parallel=args.parallel,
            **parse_space(args.space),
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def add_reproduce_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``assay reproduce`` to the subcommands ``sub``."""
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


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``assay demo`` to the subcommands ``sub``."""
    demo = sub.add_parser("demo", help="estimate pi by Monte Carlo on the process pool")
    demo.add_argument("--folder", default="assay-demo", help="where to keep the runs")
    demo.add_argument("--replicates", type=int, default=8, help="runs per sample size")
    demo.add_argument("--max-jobs", type=int, default=None, help="worker processes")
    demo.set_defaults(func=_cmd_demo)


def _cmd_run(args: argparse.Namespace) -> int:
    from assay_ops import import_operation
    from assay_steps import CodeChangedError

    from ._best import best_line
    from ._experiment import Experiment

    look_in_current_folder()
    params = _params(args)
    backend = _run_backend(args)  # bad job settings are refused before anything is imported
    operation = import_operation(args.operation)  # a module exiting at import: ImportError
    scope = dict(parse_assignment(d, "-D") for d in args.define)
    experiment = Experiment(
        args.name or operation.name,
        operation,
        params=params,
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
        best = best_line(experiment.name, results) if args.search is not None else None
        if best is not None:
            print(best, file=sys.stderr)
    counts = results.counts()
    return 1 if any(counts.get(s) for s in ("failed", "timeout", "cancelled")) else 0


def _run_backend(args: argparse.Namespace) -> dict[str, Any]:
    """Return the backend dict of ``assay run``: --backend, --backend-config, job options."""
    from ._jobopts import BACKENDS, backend_settings, option_fields, read_config

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


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from ._reproduce import reproduce

    look_in_current_folder()
    report = reproduce(args.folder, args.run_id, keep=args.keep, timeout=args.timeout)
    for line in report.lines():
        print(line)
    for warning in report.warnings:
        print(f"assay: warning: {warning}", file=sys.stderr)
    if args.keep:
        print(f"the rerun's record and artifacts are in {args.keep}")
    return 0 if report.matches else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    run_demo(folder=args.folder, replicates=args.replicates, max_jobs=args.max_jobs)
    return 0
