"""The marker of an experiment folder: which folders assay created, and claiming one.

A folder is marked (``.assay-experiment``) before assay writes its index; an ``index.sqlite``
in a folder without the marker is only read, read-only, to tell an index of an older assay
(adopted) from another tool's database (refused, never modified).
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
from pathlib import Path

from ._folderpath import check_folder
from ._schema import INDEX_NAME, _read_only_uri

#: Marker file written into an experiment folder when assay creates it, before anything else:
#: commands that write or delete refuse a folder without it (another tool's ``index.sqlite``).
MARKER_NAME = ".assay-experiment"


class ForeignFolderError(ValueError):
    """A folder holds an ``index.sqlite`` that assay did not write; assay leaves it alone."""


def _no_index(folder: str | Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"folder {str(folder)!r} has no results index ({INDEX_NAME}); "
        "expected the folder of an experiment that has run"
    )


def is_marked(folder: str | Path) -> bool:
    """Whether ``folder`` holds the marker that assay writes when it creates an experiment."""
    marker = Path(folder) / MARKER_NAME
    return marker.is_file() and not marker.is_symlink()


def claim_folder(folder: str | Path, *, create: bool) -> None:
    """Check that ``folder`` is an experiment folder of assay; mark it when assay creates it.

    A folder with the marker is assay's. A folder whose ``index.sqlite`` has no marker is
    adopted (marked) only when that database, opened read-only, is an assay results index
    (made before the marker existed); anything else is another tool's and is not modified.
    With ``create``, a folder without an index is marked (created when missing).

    Raises:
        ForeignFolderError: the folder's ``index.sqlite`` is not an assay results index.
        FileNotFoundError: ``create`` is False and the folder has no results index.
        ValueError: ``folder`` is a file.

    """
    root = check_folder(folder, "folder", "the folder of an experiment")
    if is_marked(root):
        return
    index = root / INDEX_NAME
    if index.exists():
        problem = _not_an_assay_index(index)
        if problem is not None:
            raise ForeignFolderError(
                f"folder {str(root)!r} was not created by assay: it has no {MARKER_NAME} "
                f"marker and its {INDEX_NAME} is not an assay results index ({problem}); "
                "assay leaves it alone: use another folder"
            )
        try:
            _write_marker(root)
        except OSError:
            if create:
                raise
            # a read-only copy of an older experiment can still be read
        return
    if not create:
        raise _no_index(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root)


def _not_an_assay_index(index: Path) -> str | None:
    """Say why ``index`` is not an assay results index, or None when it is one.

    The file is never modified: the header is read first, and SQLite opens it read-only, as
    immutable unless the write-ahead log files it would otherwise create are already there.
    """
    try:
        with index.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if not header.startswith(b"SQLite format 3\x00"):
        return "not an SQLite database"
    try:
        db = sqlite3.connect(_read_only_uri(index, header), uri=True)
    except sqlite3.Error as error:
        return f"unreadable: {error}"
    try:
        runs = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        meta = {row[1] for row in db.execute("PRAGMA table_info(meta)")}
        ours = {"run_id", "seq", "params", "replicate", "status"}
        if not ours <= runs or meta != {"key", "value"}:
            return "no runs and meta tables of assay"
        if db.execute("SELECT 1 FROM meta WHERE key = 'experiment'").fetchone() is None:
            return "no experiment in its meta table"
    except sqlite3.Error as error:
        return f"unreadable: {error}"
    finally:
        db.close()
    return None


def _write_marker(root: Path) -> None:
    """Write the marker of ``root`` exclusively and atomically (it appears complete, once)."""
    import importlib.metadata  # here: reading an index (``assay status``) does not need it

    try:
        version: str | None = importlib.metadata.version("assay")
    except importlib.metadata.PackageNotFoundError:
        version = None
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"format": "assay-experiment", "created": created, "assay": version})
    marker = root / MARKER_NAME
    temporary = root / f"{MARKER_NAME}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, marker)  # exclusive: fails when the marker exists
    except FileExistsError:
        pass  # another driver marked the folder at the same moment
    except OSError:  # a file system without hard links: create the marker itself exclusively
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, (text + "\n").encode())
            finally:
                os.close(fd)
    finally:
        temporary.unlink()
