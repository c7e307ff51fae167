"""Path inputs and Path fields are keyed by content: edited data recomputes; an unchanged file
is not hashed again, in this process or the next; a pure path is a name."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePath

import pytest
from assay_steps import Cached, Step, _filehash
from assay_steps._uid import uid_of

CALLS: list[str] = []


class Size(Step):
    def _run(self, path: Path) -> int:
        CALLS.append(str(path))
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size


class ReadWith(Step):
    table: Path

    def _run(self, key: str) -> str:
        CALLS.append(key)
        return f"{key}:{self.table.read_text()}"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()
    _filehash.forget_memo()


def age(path: Path, seconds: float = 60) -> None:
    """Date ``path`` back: a file changed just now is not remembered (a racy timestamp)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_an_edited_file_recomputes(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("1,2,3")
    step = Size(infra=Cached(folder=tmp_path / "cache"))
    assert step.run(data) == 5
    data.write_text("1,2,3,4")
    assert step.run(data) == 7
    assert len(CALLS) == 2


def test_the_same_content_under_another_name_is_a_hit(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("same")
    (tmp_path / "b").write_text("same")
    step = Size(infra=Cached(folder=tmp_path / "cache"))
    step.run(tmp_path / "a")
    step.run(tmp_path / "b")
    assert len(CALLS) == 1


def test_an_edited_file_in_a_directory_recomputes(tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("abc")
    step = Size(infra=Cached(folder=tmp_path / "cache"))
    assert step.run(folder) == 3
    assert step.run(folder) == 3
    (folder / "sub" / "x.txt").write_text("abcd")
    assert step.run(folder) == 4
    (folder / "sub" / "x.txt").rename(folder / "y.txt")  # same bytes, another name
    assert step.run(folder) == 4
    assert len(CALLS) == 3


def test_a_path_field_is_keyed_by_content(tmp_path: Path) -> None:
    table = tmp_path / "table.txt"
    table.write_text("v1")
    folder = tmp_path / "cache"
    assert ReadWith(table=table, infra=Cached(folder=folder)).run("k") == "k:v1"
    table.write_text("v2")
    assert ReadWith(table=table, infra=Cached(folder=folder)).run("k") == "k:v2"
    assert CALLS == ["k", "k"]


def test_an_unchanged_file_is_not_hashed_again_even_in_a_new_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(1 << 20))
    age(data)
    hashed: list[str] = []
    real = _filehash._hash_file

    def counting(path: str, size: int) -> bytes:
        hashed.append(path)
        return real(path, size)

    monkeypatch.setattr(_filehash, "_hash_file", counting)
    folder = tmp_path / "cache"
    Size(infra=Cached(folder=folder)).run(data)
    assert hashed == [str(data)]
    Size(infra=Cached(folder=folder)).run(data)
    assert hashed == [str(data)]  # remembered in this process
    _filehash.forget_memo()  # as a new process starts: only the folder's memo is left
    assert Size(infra=Cached(folder=folder)).run(data) == 1 << 20
    assert hashed == [str(data)]
    assert len(CALLS) == 1
    # The same size and modification time, but rewritten: its change time tells.
    stat = data.stat()
    data.write_bytes(os.urandom(1 << 20))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    Size(infra=Cached(folder=folder)).run(data)
    assert hashed == [str(data), str(data)]
    assert len(CALLS) == 2


def test_a_file_changed_just_now_is_hashed_again(tmp_path: Path) -> None:
    data = tmp_path / "fresh.txt"
    data.write_text("now")
    uid_of(data)
    assert _filehash.forget_memo()["digests"] == 0  # too recent to be trusted later


def test_a_missing_path_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv.*no such file"):
        Size(infra=Cached(folder=tmp_path / "cache")).run(missing)


def test_a_fifo_is_refused_without_being_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        uid_of(fifo)  # would block forever if it were opened


def test_a_pure_path_is_keyed_by_its_name(tmp_path: Path) -> None:
    named = PurePath(tmp_path / "not-there-yet.csv")
    assert uid_of(named) == uid_of(PurePath(str(named)))
    assert uid_of(named) != uid_of(PurePath(tmp_path / "other.csv"))
