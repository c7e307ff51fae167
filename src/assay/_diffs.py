"""The uncommitted changes runs were made from, kept once per distinct diff in the folder.

An experiment folder keeps the diff of each dirty work tree its runs came from, named by its
content: ``<folder>/provenance/diffs/<sha256>.diff``; a run's provenance carries its address.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from assay_ops import OperationWrapper, git_state

#: Where an experiment folder keeps the diffs of the dirty work trees its runs came from.
DIFFS = Path("provenance") / "diffs"


def store_diff(folder: str | Path, operation: OperationWrapper) -> Path | None:
    """Store the uncommitted changes of the operation's repository in an experiment folder.

    The diff (``git diff <commit> --binary`` of the tracked files) is written to
    ``<folder>/provenance/diffs/<sha256>.diff``, named by its content: written only when no
    file of that name exists, through a temporary file renamed into place, so it is stored
    once per experiment folder however many runs carry its address (``git_diff`` in their
    provenance). The git state is computed once per process.

    Returns:
        The diff's path, or ``None`` when the tree is clean, outside git, or git cannot say.

    """
    try:
        source = inspect.getsourcefile(operation.func)
    except TypeError:  # a builtin or a callable without source
        return None
    if source is None:
        return None
    state = git_state(source)
    if not state.dirty or state.diff_bytes is None or state.diff_name is None:
        return None
    target = Path(folder) / DIFFS / state.diff_name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(state.diff_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def diff_path(folder: str | Path, address: str) -> Path:
    """Return where the diff of content address ``"sha256:<hex>"`` is stored in ``folder``.

    Examples:
        >>> diff_path("runs/pi", "sha256:ab12").as_posix()
        'runs/pi/provenance/diffs/ab12.diff'

    """
    algorithm, _, digest = address.partition(":")
    if algorithm != "sha256" or not digest or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"diff address {address!r}: expected 'sha256:<hex digits>'")
    return Path(folder) / DIFFS / f"{digest}.diff"
