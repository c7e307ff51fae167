"""The ``assay`` command: run sweeps, query status and results, plot, reproduce, manage caches.

Errors print as one line (``assay: error: ...``) unless ``--debug`` is given, in which case
the traceback is shown.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ._clihelp import HelpFormatter, add_global_options, finish_parser
from ._cmd_cache import add_cache_parser
from ._cmd_results import add_results_parsers
from ._cmd_run import add_demo_parser, add_reproduce_parser, add_run_parser
from ._interrupt import STOP_REQUESTED


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``assay`` command."""
    parser = argparse.ArgumentParser(
        prog="assay",
        description="Run parameter sweeps and look at their results.",
        formatter_class=HelpFormatter,
    )
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(sub)
    add_results_parsers(sub)
    add_cache_parser(sub)
    add_reproduce_parser(sub)
    add_demo_parser(sub)
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
