"""Provenance of a run: interpreter, machine, package versions, git commit of the code."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

# Distributions whose versions explain a result; the ones not installed are left out.
_DISTRIBUTIONS = ("assay", "assay-scope", "assay-context", "assay-ops", "numpy")


@functools.lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    # Fixed for the life of the process, so computed once.
    versions = {}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "packages": versions,
    }


@functools.lru_cache(maxsize=256)
def _git_dir(folder: Path) -> Path | None:
    """Return the git directory of the repository holding ``folder``, or None."""
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            # A worktree or submodule: ".git" is a file saying "gitdir: <path>".
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                return (candidate / text[len("gitdir:") :].strip()).resolve()
    return None


def _common_dir(git_dir: Path) -> Path:
    # Worktrees keep branch refs in the main repository's directory.
    common = git_dir / "commondir"
    return (git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    for base in (git_dir, _common_dir(git_dir)):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip()
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    return None


def _read_commit(git_dir: Path) -> tuple[str | None, str]:
    """Return the checked-out commit and the file whose change would change it."""
    head = (git_dir / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head or None, str(git_dir / "HEAD")
    ref = head[len("ref:") :].strip()
    for base in (git_dir, _common_dir(git_dir)):
        if (base / ref).is_file():
            return (base / ref).read_text().strip(), str(base / ref)
    return _resolve_ref(git_dir, ref), str(_common_dir(git_dir) / "packed-refs")


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


# git directory -> (mtime of HEAD, file holding the commit, its mtime, commit). Checked by two
# stat calls per run, so a commit made while the process lives is seen by the next run.
_COMMITS: dict[str, tuple[int, str, int, str | None]] = {}


@functools.lru_cache(maxsize=256)
def _git_dir_of(source_file: str) -> tuple[str, str] | None:
    """Return the git directory holding ``source_file`` and the path of its HEAD, or None."""
    if not os.path.isfile(source_file):
        return None  # e.g. "<string>" or "<stdin>": code with no file, so no repository
    found = _git_dir(Path(source_file).resolve().parent)
    return None if found is None else (str(found), str(found / "HEAD"))


def git_commit(source_file: str | Path | None) -> str | None:
    """Return the commit checked out in the git repository holding ``source_file``.

    Read from the ``.git`` files directly (no ``git`` process), so it costs microseconds.
    Returns ``None`` when the file is not inside a git repository or has no commit yet.
    """
    if source_file is None:
        return None
    found = _git_dir_of(str(source_file))
    if found is None:
        return None
    git_dir, head = found
    cached = _COMMITS.get(git_dir)
    if cached is not None and cached[0] == _mtime(head) and cached[2] == _mtime(cached[1]):
        return cached[3]
    try:
        head_mtime = _mtime(head)
        commit, source = _read_commit(Path(git_dir))
    except OSError:
        return None
    _COMMITS[git_dir] = (head_mtime, source, _mtime(source), commit)
    return commit


def provenance(source_file: str | Path | None) -> dict[str, Any]:
    """Return the provenance of a run of code defined in ``source_file``.

    Keys: ``python``, ``implementation``, ``executable``, ``platform``, ``hostname``,
    ``packages`` (versions of assay, its layers and numpy that are installed) and
    ``git_commit`` (``None`` only when the code is not in a git repository).
    """
    machine = _machine()
    record = dict(machine)
    record["packages"] = dict(machine["packages"])  # a private copy per record
    record["git_commit"] = git_commit(source_file)
    return record
