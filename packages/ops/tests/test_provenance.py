"""Provenance of a run: the git commit, whether the work tree is dirty, and the diff's address."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from assay_ops import GitState, git_state, operation
from assay_ops import _provenance as provenance_module

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    # The dirty state is remembered per process; each test starts from a process that never
    # asked (and leaves none of its repositories behind for the next test).
    provenance_module._STATES.clear()
    yield
    provenance_module._STATES.clear()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one committed file, ``train.py``."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("LR = 0.1\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def forget() -> None:
    """Forget the remembered dirty state, as a new process would start."""
    provenance_module._STATES.clear()


@needs_git
def test_a_clean_tree_is_not_dirty_and_has_no_diff(repo: Path) -> None:
    state = git_state(repo)
    assert state.root == repo.resolve()
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.dirty is False
    assert state.diff_bytes is None
    assert state.diff_address is None
    assert state.diff_name is None
    assert git_state(repo / "train.py") == state  # a file gives its repository's state


@needs_git
def test_an_edited_tracked_file_makes_the_tree_dirty_and_the_address_follows_the_diff(
    repo: Path,
) -> None:
    (repo / "train.py").write_text("LR = 0.2\n")
    first = git_state(repo)
    assert first.dirty is True
    assert first.diff_bytes is not None
    assert b"-LR = 0.1\n+LR = 0.2\n" in first.diff_bytes
    assert first.diff_address == "sha256:" + hashlib.sha256(first.diff_bytes).hexdigest()
    assert first.diff_name == first.diff_address.partition(":")[2] + ".diff"
    # the diff is a real patch of the commit: taken back out, it gives the committed file
    patch = repo.parent / "changes.diff"
    patch.write_bytes(first.diff_bytes)
    git(repo, "apply", "-R", str(patch))
    assert (repo / "train.py").read_text() == "LR = 0.1\n"

    (repo / "train.py").write_text("LR = 0.3\n")
    forget()
    second = git_state(repo)
    assert second.dirty is True
    assert second.diff_address != first.diff_address
    # staged changes count as well: the diff is against the commit, not the index
    git(repo, "add", "train.py")
    forget()
    assert git_state(repo).diff_address == second.diff_address


@needs_git
def test_untracked_files_are_not_part_of_the_diff_until_added_with_intent(repo: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    state = git_state(repo)
    assert state.dirty is False
    assert state.diff_bytes is None
    # `git add -N` puts a new file's content into the diff without staging it
    git(repo, "add", "-N", "notes.txt")
    forget()
    state = git_state(repo)
    assert state.dirty is True
    assert state.diff_bytes is not None
    assert b"+scratch\n" in state.diff_bytes


def test_outside_a_repository_nothing_is_known(tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    if any((folder / ".git").exists() for folder in alone.parents):
        pytest.skip("the temporary folder is inside a git repository")
    assert git_state(alone) == GitState(root=None, commit=None, dirty=None)
    assert git_state(tmp_path / "no" / "such" / "file.py").commit is None


@needs_git
def test_without_git_or_with_a_broken_repository_dirty_is_unknown(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("LR = 0.2\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git executable to be found
    state = git_state(repo)
    assert state.commit == commit  # read from the .git files, no process needed
    assert state.dirty is None
    assert state.diff_address is None
    monkeypatch.undo()
    # a .git folder whose commit object does not exist: git fails, nothing raises
    fake = tmp_path / "fake"
    (fake / ".git" / "refs" / "heads").mkdir(parents=True)
    (fake / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (fake / ".git" / "refs" / "heads" / "main").write_text("0" * 40 + "\n")
    state = git_state(fake)
    assert state.commit == "0" * 40
    assert state.dirty is None


@needs_git
def test_variables_pointing_git_elsewhere_are_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (repo / "train.py").write_text("LR = 0.2\n")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))  # as inside a git hook
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert git_state(repo).dirty is True


def counting_git(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    real = provenance_module._run_git

    def run_git(work_tree: str, args: tuple[str, ...]) -> bytes | None:
        calls.append(args)
        return real(work_tree, args)

    monkeypatch.setattr(provenance_module, "_run_git", run_git)
    return calls


def import_from(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import module ``name`` of ``folder``; it is forgotten after the test."""
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, name, module)  # removed again when the test ends
    return module


@needs_git
def test_runs_record_the_dirty_state_and_git_runs_once_per_process(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_git(monkeypatch)
    name = f"ops_in_repo_{uuid.uuid4().hex[:8]}"
    (repo / f"{name}.py").write_text(
        "from assay_ops import operation\n\n\n@operation\ndef op(capture):\n"
        "    capture.metric('x', 1)\n"
    )
    git(repo, "add", f"{name}.py")
    git(repo, "commit", "-q", "-m", "op")
    (repo / "train.py").write_text("LR = 0.2\n")  # uncommitted
    module = import_from(repo, name, monkeypatch)
    records = [module.op.run() for _ in range(5)]
    assert len(calls) == 1  # one git diff for five runs
    expected = git_state(repo)
    assert len(calls) == 1  # and asking for the state again costs nothing more
    for record in records:
        assert record.provenance["git_commit"] == git(repo, "rev-parse", "HEAD")
        assert record.provenance["git_dirty"] is True
        assert record.provenance["git_diff"] == expected.diff_address
    # a commit made while the process lives is seen: its state is computed once, anew
    git(repo, "commit", "-q", "-am", "second")
    after = [module.op.run() for _ in range(3)]
    assert len(calls) == 2
    assert {r.provenance["git_dirty"] for r in after} == {False}
    assert {r.provenance["git_diff"] for r in after} == {None}


def test_every_record_has_the_git_keys_and_code_without_a_file_has_none() -> None:
    @operation
    def op() -> None: ...

    record = op.run()
    for key in ("git_commit", "git_dirty", "git_diff"):
        assert key in record.provenance
    assert provenance_module.provenance(None)["git_dirty"] is None
    assert provenance_module.provenance("<string>")["git_diff"] is None
