"""Code snapshots: jobs import the user's code as it was at submission, not as it is when they run.

A job may wait in the queue for hours; if it imported the user's modules from the working
tree, an edit made in the meantime would change what it runs. ``snapshot_code`` copies
the importable code to a folder named by its content, and ``snapshot_setup`` gives the
shell lines that make a job import from that copy (first on ``PYTHONPATH``, and its working
directory).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: Beyond these, a snapshot is refused: the working directory is most likely not a project.
MAX_FILES = 20_000
MAX_BYTES = 500 * 1024**2
#: Folders never copied when there is no git work tree (caches, environments, VCS data).
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".hg", ".svn"}
#: Marks a snapshot folder as complete (written last, after every file).
_DONE = ".assay-snapshot"


def _git_root(cwd: Path) -> Path | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(found) if found else None


def _git_files(root: Path) -> list[Path]:
    # Tracked files (as they are in the work tree now), and untracked Python files that git
    # does not ignore: a module written a minute ago and not yet added is still imported.
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=root, capture_output=True, timeout=60, check=True
    ).stdout
    untracked = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard", "--", "*.py"],
        cwd=root,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    names = {name for name in (listed + untracked).decode().split("\0") if name}
    return [Path(name) for name in sorted(names) if (root / name).is_file()]


def _python_files(root: Path, skip: list[Path]) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            name
            for name in dirs
            if name not in _SKIPPED_DIRS
            and not name.startswith(".")
            and not (here / name / "pyvenv.cfg").exists()
            and not _inside(here / name, skip)
        )
        found += [(here / name).relative_to(root) for name in sorted(files) if name.endswith(".py")]
    return found


def _inside(path: Path, folders: Iterable[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == folder or folder in resolved.parents for folder in folders)


def snapshot_code(directory: Path, exclude: Iterable[Path] = (), cwd: Path | None = None) -> Path:
    """Copy the user's code to a subfolder of ``directory`` named by its content; return it.

    In a git work tree, the code is every file git tracks (as it is now in the work tree)
    and every untracked, not ignored ``.py`` file, under the repository's root; elsewhere,
    every ``.py`` file under the working directory, skipping hidden folders, virtual
    environments and ``__pycache__``. Files under ``exclude`` (the cache, the logs, the
    snapshots themselves) are never copied. The same code gives the same folder, copied once.

    Args:
        directory: Where snapshots are kept (created if needed).
        exclude: Folders whose files are never part of the code.
        cwd: The working directory (default: the current one).

    Returns:
        The snapshot folder: the copy of the repository's root (or of the working directory).

    Raises:
        ValueError: More than 20,000 files or 500 MB would be copied (run from the project's
            folder, or keep data out of it).

    """
    cwd = (cwd or Path.cwd()).resolve()
    directory = Path(directory).absolute()
    skip = [Path(folder).resolve() for folder in (*exclude, directory)]
    root = _git_root(cwd)
    if root is not None:
        files = [name for name in _git_files(root) if not _inside(root / name, skip)]
    else:
        root = cwd
        files = _python_files(root, skip)
    total = sum((root / name).stat().st_size for name in files)
    if len(files) > MAX_FILES or total > MAX_BYTES:
        raise ValueError(
            f"code_snapshot={str(directory)!r}: the code under {root} is {len(files)} files and "
            f"{total / 1024**2:.0f} MB, more than a snapshot copies ({MAX_FILES} files, "
            f"{MAX_BYTES // 1024**2} MB); run from the project's folder, or keep data out of it"
        )
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    target = directory / digest.hexdigest()[:16]
    if (target / _DONE).exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=directory))
    try:
        for name in files:
            (building / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, building / name)
        (building / _DONE).write_text(str(root) + "\n")
        try:
            building.rename(target)
        except OSError:  # another process made the same snapshot meanwhile
            if not (target / _DONE).exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def snapshot_paths(snapshot: Path, root: Path, cwd: Path | None = None) -> tuple[Path, list[Path]]:
    """Return the working directory and the import path of a job that runs from ``snapshot``.

    Each folder of this interpreter's ``sys.path`` inside ``root`` (the folder that was
    copied) is mapped to its copy; so is the working directory.
    """
    cwd = (cwd or Path.cwd()).resolve()
    root = root.resolve()

    def mapped(path: Path) -> Path | None:
        path = path.resolve()
        if path == root or root in path.parents:
            return snapshot / path.relative_to(root)
        return None

    workdir = mapped(cwd) or snapshot
    imports: list[Path] = [workdir]
    for entry in sys.path:
        copy = mapped(Path(entry or cwd))
        # Only folders the snapshot holds: a virtual environment inside the project is not
        # copied, and must not shadow the real one.
        if copy is not None and copy not in imports and copy.is_dir():
            imports.append(copy)
    return workdir, imports


def snapshot_setup(snapshot: Path, cwd: Path | None = None) -> list[str]:
    """Return the shell lines that make a job run from ``snapshot`` (see ``snapshot_code``)."""
    root = Path((snapshot / _DONE).read_text().strip())
    workdir, imports = snapshot_paths(snapshot, root, cwd)
    path = ":".join(shlex.quote(str(folder)) for folder in imports)
    return [
        f"export PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"cd {shlex.quote(str(workdir))}",
    ]
