"""The help of the ``assay`` command: examples, global options, notes on repeated options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: The examples that end each command's help, by command ("" is ``assay --help`` itself).
#: A line starting with ``#`` says what the next one does. tests/test_cli_newcomer.py parses
#: every example with the parser, so they stay valid.
EXAMPLES = {
    "": """
        assay demo
        assay run train:fit --grid lr=1e-3,1e-2 --replicates 3 --folder runs/lr
        assay results runs/lr --summary loss --by lr
    """,
    "run": """
        # the operation fit of train.py, 2 learning rates x 3 replicates, in this process
        assay run train:fit --grid lr=1e-3,1e-2 --replicates 3 --folder runs/lr
        # two axes (their product: 4 runs), a scope value, 8 worker processes
        assay run train:fit --grid lr=1e-3,1e-2 --grid 'layers=[64],[64,64]' -D model.depth=4 \\
            --backend process --max-jobs 8 --folder runs/lr
        # Slurm jobs of 2 hours and 8 GB each; run the same command again to resume
        assay run train:fit --grid lr=1e-3,1e-2 --backend slurm --time 2:00:00 --mem 8G \\
            --partition gpu --folder runs/lr
    """,
    "status": """
        assay status runs/lr
        assay status runs/lr --all --resources
    """,
    "logs": """
        # the run whose id starts with 3f2a
        assay logs runs/lr 3f2a
        assay logs runs/lr 3f2a --path
    """,
    "results": """
        assay results runs/lr
        assay results runs/lr --summary loss --by lr --csv
        assay results runs/lr --status failed,timeout --json
    """,
    "plot": """
        assay plot runs/lr loss --x lr
        assay plot runs/lr loss --x lr --hue layers --out loss.png
    """,
    "cache": """
        assay cache info runs/lr
        assay cache prune runs/lr --older-than 30d --yes
    """,
    "cache info": """
        assay cache info runs/lr
    """,
    "cache compact": """
        assay cache compact runs/lr
    """,
    "cache migrate": """
        assay cache migrate runs/lr
    """,
    "cache clear": """
        assay cache clear runs/lr
        assay cache clear runs/lr --yes
    """,
    "cache prune": """
        # list what would go (a dry run), then delete it
        assay cache prune runs/lr --older-than 30d
        assay cache prune runs/lr --older-than 30d --yes
        assay cache prune runs/lr --max-size 2G --stale-code --yes
    """,
    "cache explain": """
        assay cache explain runs/lr
    """,
    "reproduce": """
        assay reproduce runs/lr 3f2a
        assay reproduce runs/lr 3f2a --keep rerun --timeout 600
    """,
    "demo": """
        assay demo
        assay demo --folder pi-runs --replicates 16 --max-jobs 4
    """,
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap one-paragraph descriptions; keep the line breaks of text that has them (examples)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


class _VersionAction(argparse.Action):
    """``--version``: print the versions of assay and its layers (on stdout), then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from ._version import version_lines

        print("\n".join(version_lines()))
        parser.exit()


def add_global_options(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """Add the options that every command takes, before or after its name.

    Below the top level, their default is SUPPRESS: a subcommand's parser sets ``debug``
    only when it is given there, never resetting the ``--debug`` given before the command.
    """
    options = parser.add_argument_group("global options (before or after the command)")
    options.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks on errors",
    )
    options.add_argument(
        "--version", action=_VersionAction, help="print the versions of assay and its packages"
    )


def finish_parser(parser: argparse.ArgumentParser, command: str = "") -> None:
    """Give each command of ``parser`` the global options, its examples and repeat notes."""
    parser.formatter_class = HelpFormatter
    examples = EXAMPLES.get(command)
    if examples is not None and parser.epilog is None:
        lines, follows = [], False
        for line in examples.strip().splitlines():  # continued lines are indented further
            lines.append(("      " if follows else "  ") + line.strip())
            follows = line.endswith("\\")
        parser.epilog = "examples:\n" + "\n".join(lines)
        if not command:
            parser.epilog += "\n\nassay COMMAND --help shows the options and examples of COMMAND."
    for action in parser._actions:
        appends = isinstance(action, argparse._AppendAction) and action.help is not None
        if appends and "repeat" not in (action.help or ""):  # an option given many times
            action.help = f"{action.help} (repeatable)"  # says so
        if not isinstance(action, argparse._SubParsersAction):
            continue
        done: set[int] = set()
        for name, child in action.choices.items():
            if id(child) in done:  # an alias
                continue
            done.add(id(child))
            add_global_options(child, top=False)
            finish_parser(child, f"{command} {name}".strip())
