"""Provenance of a run: interpreter, machine, package versions, git commit and dirty state.

The commit is read from the ``.git`` files (no ``git`` process, checked again on every run).
Whether the working tree has uncommitted changes, and the content address of those changes,
takes a ``git diff``: it runs once per process for each repository and commit, never per run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import threading
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
def _repository(folder: Path) -> tuple[Path, Path] | None:
    """Return the work tree and the git directory of the repository holding ``folder``."""
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return candidate, dot_git
        if dot_git.is_file():
            # A worktree or submodule: ".git" is a file saying "gitdir: <path>".
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                return candidate, (candidate / text[len("gitdir:") :].strip()).resolve()
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
def _git_dir_of(source_file: str) -> tuple[str, str, str] | None:
    """Return the git directory holding ``source_file``, its HEAD and work tree, or None."""
    if not os.path.isfile(source_file):
        return None  # e.g. "<string>" or "<stdin>": code with no file, so no repository
    return _repository_of_folder(str(Path(source_file).resolve().parent))


@functools.lru_cache(maxsize=256)
def _repository_of_folder(folder: str) -> tuple[str, str, str] | None:
    found = _repository(Path(folder))
    if found is None:
        return None
    work_tree, git_dir = found
    return str(git_dir), str(git_dir / "HEAD"), str(work_tree)


def _commit_of(git_dir: str, head: str) -> str | None:
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
    return _commit_of(found[0], found[1])


# ------------------------------------------------------------------ uncommitted changes

# Options that make the diff's bytes independent of the user's git configuration (prefixes,
# colour, external diff drivers, rename detection, algorithm, context), so the same changes
# get the same address on a laptop and on a cluster node, and the diff applies with
# ``git apply``.
_DIFF_CONFIG = (
    "-c", "core.quotePath=true", "-c", "diff.suppressBlankEmpty=false",
    "-c", "diff.interHunkContext=0",
)  # fmt: skip
_DIFF_OPTIONS = (
    "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv",
    "--no-renames", "--diff-algorithm=myers", "--indent-heuristic", "--unified=3",
    "--submodule=short", "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip
# Variables that would point git at another repository, index or diff format than the
# work tree's own.
_GIT_REDIRECTS = frozenset(
    {
        "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
        "GIT_PREFIX", "GIT_DIFF_OPTS", "GIT_EXTERNAL_DIFF",
    }
)  # fmt: skip
#: Seconds a ``git diff`` may take before the dirty state is given up as unknown.
GIT_TIMEOUT = 60.0


def _run_git(work_tree: str, args: tuple[str, ...]) -> bytes | None:
    """Run ``git`` in ``work_tree``; return its output, or None when it fails or is missing."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # a diff must not take the index lock of a busy repository
    env["GIT_TERMINAL_PROMPT"] = "0"
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=work_tree,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git installed, a timeout
        return None
    return done.stdout if done.returncode == 0 else None


def _address(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class GitState:
    """The state of the git repository holding some code: commit, and uncommitted changes.

    Attributes:
        root: The repository's work tree, or ``None`` outside a repository.
        commit: The checked-out commit, or ``None`` (no repository, no commit yet).
        dirty: Whether tracked files differ from the commit (staged or not); ``None`` when git
            cannot say (not a repository, no commit, ``git`` not installed or failing).
        diff_bytes: ``git diff <commit> --binary`` of the work tree when it is dirty, else
            ``None``. Untracked files are not part of it (``git add -N FILE`` makes a new
            file's content part of it without staging it).
        diff_address: ``"sha256:<hex>"`` of ``diff_bytes``, or ``None``: what a run record
            keeps, the content address under which the diff itself is stored.

    Examples:
        >>> state = GitState(root=None, commit=None, dirty=None, diff_bytes=None)
        >>> state.diff_address is None, state.diff_name is None
        (True, True)
        >>> dirty = GitState(root=None, commit="c0ffee", dirty=True, diff_bytes=b"x")
        >>> dirty.diff_address
        'sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'
        >>> dirty.diff_name
        '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881.diff'

    """

    root: Path | None
    commit: str | None
    dirty: bool | None
    diff_bytes: bytes | None = dataclasses.field(default=None, repr=False)
    diff_address: str | None = dataclasses.field(init=False, default=None)

    def __post_init__(self) -> None:
        address = None if self.diff_bytes is None else _address(self.diff_bytes)
        object.__setattr__(self, "diff_address", address)

    @property
    def diff_name(self) -> str | None:
        """The file name the diff is stored under, ``"<sha256 hex>.diff"``, or ``None``."""
        if self.diff_address is None:
            return None
        return self.diff_address.partition(":")[2] + ".diff"


# (git directory, commit) -> dirty state and diff: computed once per process for each
# repository and commit (a new commit made while the process lives is diffed anew).
_STATES: dict[tuple[str, str], tuple[bool | None, bytes | None, str | None]] = {}
_STATES_LOCK = threading.Lock()
if hasattr(os, "register_at_fork"):  # a fork made while a thread held it gets a free lock
    os.register_at_fork(after_in_child=lambda: globals().update(_STATES_LOCK=threading.Lock()))


def _dirty_state(
    git_dir: str, work_tree: str, commit: str | None
) -> tuple[bool | None, bytes | None, str | None]:
    """Return the dirty flag, the diff and its address (the last two None for a clean tree)."""
    if commit is None:
        return None, None, None
    key = (git_dir, commit)
    found = _STATES.get(key)
    if found is not None:
        return found
    with _STATES_LOCK:
        found = _STATES.get(key)
        if found is None:
            diff = _run_git(work_tree, (*_DIFF_CONFIG, "diff", *_DIFF_OPTIONS, commit, "--"))
            if diff is None:
                found = (None, None, None)
            else:
                found = (bool(diff), diff or None, _address(diff) if diff else None)
            _STATES[key] = found
    return found


def git_state(path: str | Path) -> GitState:
    """Return the git state of the repository holding ``path`` (a file or a folder).

    The commit is read from the ``.git`` files; whether the work tree is dirty takes one
    ``git diff`` the first time a process asks about a repository at a commit, and is
    remembered for the life of the process after that (runs never pay for it). Nothing
    raises: outside a repository, or when ``git`` is not installed or fails, ``dirty`` is
    ``None``.

    Examples:
        >>> import tempfile
        >>> state = git_state(tempfile.mkdtemp())  # a folder outside any repository
        >>> state.commit is None or state.root is not None
        True

    """
    folder = Path(path)
    if not folder.exists():
        return GitState(root=None, commit=None, dirty=None)
    found = _repository_of_folder(str((folder if folder.is_dir() else folder.parent).resolve()))
    if found is None:
        return GitState(root=None, commit=None, dirty=None)
    git_dir, head, work_tree = found
    commit = _commit_of(git_dir, head)
    dirty, diff, _ = _dirty_state(git_dir, work_tree, commit)
    return GitState(root=Path(work_tree), commit=commit, dirty=dirty, diff_bytes=diff)


def _git_provenance(source_file: str | Path | None) -> tuple[str | None, bool | None, str | None]:
    """Return the commit, dirty flag and diff address for code in ``source_file``."""
    if source_file is None:
        return None, None, None
    found = _git_dir_of(str(source_file))
    if found is None:
        return None, None, None
    git_dir, head, work_tree = found
    commit = _commit_of(git_dir, head)
    dirty, _, address = _dirty_state(git_dir, work_tree, commit)
    return commit, dirty, address


def provenance(source_file: str | Path | None) -> dict[str, Any]:
    """Return the provenance of a run of code defined in ``source_file``.

    Keys: ``python``, ``implementation``, ``executable``, ``platform``, ``hostname``,
    ``packages`` (versions of assay, its layers and numpy that are installed),
    ``git_commit`` (``None`` only when the code is not in a git repository), ``git_dirty``
    (whether tracked files differ from that commit; ``None`` when git cannot say) and
    ``git_diff`` (``"sha256:<hex>"`` of those uncommitted changes, ``None`` for a clean tree).
    """
    machine = _machine()
    record = dict(machine)
    record["packages"] = dict(machine["packages"])  # a private copy per record
    commit, dirty, diff = _git_provenance(source_file)
    record["git_commit"] = commit
    record["git_dirty"] = dirty
    record["git_diff"] = diff
    return record
