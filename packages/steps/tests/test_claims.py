"""Claims: which process computes which chunk of items, without locks, across hosts."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assay_steps import ItemTask, Step, _claims, _task
from assay_steps._claims import Claim, live_claims, running
from steps_testkit import CALLS, Fail, Mult, calls, infra
from store_testkit import TESTS, dead_pid

#: How long a test waits for another process to reach a point (never reached when it works).
PATIENCE = 30.0
_names = itertools.count()

CLAIM_AND_WAIT = """
import sys; sys.path.insert(0, sys.argv[1])
from steps_testkit import Mult
from assay_steps._claims import Claim
step = Mult(infra={"backend": "Cached", "folder": sys.argv[2]})
store = step._store(())
store.make_folders()
uids = [step.lookup(float(v)).uid for v in sys.argv[3].split(",")]
claim = Claim.take(store.folder, uids)
print("claimed" if claim.granted == uids else "refused", flush=True)
if sys.stdin.readline().strip() == "write":
    for uid in uids:
        store.write_result(uid, "from the other process")
    store.sync()
    claim.release()
    print("done", flush=True)
"""


def entries(folder: Path) -> Path:
    return Mult(infra=infra(folder)).lookup(0.0).paths.entries_folder.absolute()


def uids_of(folder: Path, *values: float) -> list[str]:
    step = Mult(infra=infra(folder))
    return [step.lookup(v).uid for v in values]


def plant(
    entries_folder: Path,
    uids: Iterable[str],
    *,
    host: str = _claims.HOST,
    pid: int | None = None,
    started: str | None = None,
    beat: str | None = None,
) -> Path:
    """Write a claim file by hand, as another process (or host) would have."""
    folder = entries_folder / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"host": host, "pid": os.getpid() if pid is None else pid, "time": time.time()}
    if started is not None:
        owner["started"] = started
    if beat is not None:
        owner["beat"] = beat
    path = folder / f"{host}-{owner['pid']}-planted-{next(_names)}.claim"
    path.write_text(json.dumps(owner) + "\n" + "\n".join(uids))
    return path


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "?"


def wait_for_state(pid: int, state: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while proc_state(pid) != state and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc_state(pid) == state


@pytest.fixture
def ordered_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Claims ordered by when this process first read them (not by the file system's ctime)."""
    order: dict[str, int] = {}
    real = _claims._read_claim

    def read(folder: str, name: str) -> Any:
        seen = real(folder, name)
        if seen is None:
            return None
        position = order.setdefault(name, len(order))
        return _claims._Seen((position, name), seen.owner, seen.uids)

    monkeypatch.setattr(_claims, "_read_claim", read)
    return order


@pytest.fixture
def same_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every claim appeared at the same instant (file system times are coarse)."""
    real = _claims._read_claim

    def read(folder: str, name: str) -> Any:
        seen = real(folder, name)
        return None if seen is None else _claims._Seen((0, name), seen.owner, seen.uids)

    monkeypatch.setattr(_claims, "_read_claim", read)


# ---------------------------------------------------------------- granted and yielded


def test_a_claim_grants_its_items_until_released(tmp_path: Path) -> None:
    claim = Claim.take(str(tmp_path), ["a", "b"])
    assert claim.granted == ["a", "b"]
    assert running(str(tmp_path)) == {"a", "b"}
    (path,) = (tmp_path / "claims").glob("*.claim")
    owner = json.loads(path.read_text().split("\n", 1)[0])
    assert owner["pid"] == os.getpid()
    assert owner["host"] == _claims.HOST
    assert path.read_text().split("\n")[1:] == ["a", "b"]
    claim.release()
    assert running(str(tmp_path)) == set()
    assert not list((tmp_path / "claims").glob("*.claim"))
    assert not [p for p in (tmp_path / "claims").iterdir() if p.name.startswith(".")]


@pytest.mark.usefixtures("ordered_keys")
def test_a_later_claim_yields_the_items_an_earlier_live_claim_names(tmp_path: Path) -> None:
    first = Claim.take(str(tmp_path), ["a", "b"])
    second = Claim.take(str(tmp_path), ["b", "c"])
    assert first.granted == ["a", "b"]
    assert second.granted == ["c"]
    first.release()
    third = Claim.take(str(tmp_path), ["a", "b"])
    assert third.granted == ["a"]  # b: the second claim is older and still live
    second.release()
    third.release()


@pytest.mark.usefixtures("ordered_keys")
def test_a_claim_appearing_while_another_lists_leaves_each_item_to_one_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first claim is in place; the second appears before the first one lists the claims.
    # The first sees a newer claim and keeps its items; the second sees an older one: yields.
    real = _claims.live_claims
    taken: dict[str, Claim] = {}
    started: list[bool] = []

    def listing(folder: str) -> list[Any]:
        if not started:
            started.append(True)
            taken["second"] = Claim.take(folder, ["b", "c"])
        return real(folder)

    monkeypatch.setattr(_claims, "live_claims", listing)
    first = Claim.take(str(tmp_path), ["a", "b"])
    second = taken["second"]
    assert first.granted == ["a", "b"]
    assert second.granted == ["c"]


@pytest.mark.usefixtures("same_instant")
def test_claims_of_the_same_instant_both_yield_their_common_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _claims.live_claims
    taken: dict[str, Claim] = {}
    started: list[bool] = []

    def listing(folder: str) -> list[Any]:
        if not started:
            started.append(True)
            taken["second"] = Claim.take(folder, ["b", "c"])
        return real(folder)

    monkeypatch.setattr(_claims, "live_claims", listing)
    first = Claim.take(str(tmp_path), ["a", "b"])
    # Neither knows whether the other saw it: neither computes b (it comes round again).
    assert first.granted == ["a"]
    assert taken["second"].granted == ["c"]
    first.release()
    taken["second"].release()
    again = Claim.take(str(tmp_path), ["b"])
    assert again.granted == ["b"]


# ---------------------------------------------------------------- staleness on this host


def test_a_claim_of_a_dead_process_is_stale_and_its_items_are_computed(folder: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(TESTS), str(folder), "1,2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None
    try:
        assert other.stdout.readline().strip() == "claimed"
        handle = Mult(infra=infra(folder)).lookup(1.0)
        assert handle.status == "running"
        assert running(str(entries(folder))) == set(uids_of(folder, 1.0, 2.0))
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(PATIENCE)
    assert other.returncode == -signal.SIGKILL  # the kill landed: no release, no atexit
    (claim,) = (entries(folder) / "claims").glob("*.claim")  # left behind by the dead
    assert handle.status is None
    assert running(str(entries(folder))) == set()
    assert not claim.exists()  # removed by whoever found it stale
    assert list(Mult(infra=infra(folder)).run_many([1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    assert calls("Mult") == [1.0, 2.0, 3.0]


def test_a_stopped_process_keeps_its_claim_however_old_its_heartbeat(folder: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(TESTS), str(folder), "1,2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdin is not None
    assert other.stdout is not None
    outcome: dict[str, Any] = {}
    waiter = None
    try:
        assert other.stdout.readline().strip() == "claimed"
        other.send_signal(signal.SIGSTOP)
        wait_for_state(other.pid, "T")
        (beat,) = (entries(folder) / "claims").glob(f"*-{other.pid}-*.beat")
        os.utime(beat, (0, 0))  # its heartbeat stopped long ago (it is paused)
        assert Mult(infra=infra(folder)).lookup(1.0).status == "running"
        # A task given the items leaves them to their live owner.
        step = Mult(infra=infra(folder))
        store = step._store(())
        uids = uids_of(folder, 1.0, 2.0)
        ItemTask(step=step, prefix=(), paths=store.paths, uids=uids, values=[1.0, 2.0])()
        assert calls("Mult") == []
        assert [step.lookup(v).status for v in (1.0, 2.0)] == ["running", "running"]

        def run() -> None:
            outcome["results"] = list(Mult(infra=infra(folder)).run_many([1.0, 2.0]))

        waiter = threading.Thread(target=run, daemon=True)
        waiter.start()  # it waits for the paused owner
        other.stdin.write("write\n")
        other.stdin.flush()
        other.send_signal(signal.SIGCONT)
        assert other.stdout.readline().strip() == "done"
    finally:
        other.send_signal(signal.SIGCONT)
        other.kill()
        other.wait(PATIENCE)
    assert waiter is not None
    waiter.join(PATIENCE)
    assert outcome.get("results") == ["from the other process"] * 2
    assert calls("Mult") == []  # never computed here


def test_a_claim_whose_owner_ended_unreaped_is_stale(folder: Path) -> None:
    ended = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(TESTS), str(folder), "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_state(ended.pid, "Z")  # ended, not reaped: signals still reach it
        assert list((entries(folder) / "claims").glob("*.claim"))  # it never released
        assert running(str(entries(folder))) == set()
    finally:
        ended.wait()


def test_a_claim_naming_this_pid_but_another_start_time_is_stale(folder: Path) -> None:
    # The pid was reused: the process that claimed is gone.
    uid = uids_of(folder, 1.0)[0]
    plant(entries(folder), [uid], started="1")
    assert running(str(entries(folder))) == set()
    plant(entries(folder), [uid], pid=dead_pid())
    assert running(str(entries(folder))) == set()
    assert Mult(infra=infra(folder)).run(1.0) == 2.0


def test_a_claim_that_cannot_be_read_names_no_item(folder: Path) -> None:
    folder_of_claims = entries(folder) / "claims"
    folder_of_claims.mkdir(parents=True)
    (folder_of_claims / "garbage.claim").write_bytes(b"\xff\xfe not json\nitem")
    (folder_of_claims / "list.claim").write_text("[1, 2]\nitem")
    (folder_of_claims / "empty.claim").write_text("")
    assert running(str(entries(folder))) == set()
    assert Mult(infra=infra(folder)).run(1.0) == 2.0


# ---------------------------------------------------------------- other hosts


def test_a_claim_from_another_host_is_live_while_its_heartbeat_is_fresh(folder: Path) -> None:
    uid = uids_of(folder, 3.0)[0]
    beat = entries(folder) / "claims" / "elsewhere-4242-abcd1234.beat"
    claim = plant(entries(folder), [uid], host="elsewhere", pid=4242, beat=beat.name)
    beat.touch()
    handle = Mult(infra=infra(folder)).lookup(3.0)
    assert handle.status == "running"  # a remote pid cannot be checked: its heartbeat is
    old = time.time() - _claims.STALE_SECONDS - 5
    os.utime(beat, (old, old))
    assert handle.status is None
    assert not claim.exists()
    assert Mult(infra=infra(folder)).run(3.0) == 6.0


@pytest.mark.parametrize(
    ("age", "live"),
    [
        (0.0, True),
        (-5.0, True),  # a clock a little ahead: still beating
        (_claims.STALE_SECONDS - 10, True),
        (_claims.STALE_SECONDS + 10, False),
        (-3600.0, False),  # copied (rsync -a) from a clock an hour ahead: never beats again
        (None, False),  # no heartbeat file at all
    ],
)
def test_the_heartbeat_of_another_host_decides_its_claims(
    tmp_path: Path, age: float | None, live: bool
) -> None:
    beat = tmp_path / "claims" / "elsewhere-7-abcd1234.beat"
    plant(tmp_path, ["item"], host="elsewhere", pid=7, beat=beat.name)
    if age is not None:
        beat.touch()
        then = time.time() - age
        os.utime(beat, (then, then))
    assert running(str(tmp_path)) == ({"item"} if live else set())


@pytest.mark.parametrize("beat", ["../escape.beat", "/etc/passwd", "", ".", "itself", None])
def test_a_claim_from_another_host_without_a_heartbeat_file_of_its_own_is_stale(
    tmp_path: Path, beat: str | None
) -> None:
    # Its heartbeat must be a beat file in the claims folder: not a file elsewhere, not the
    # folder itself (touched whenever anyone claims), not a claim.
    folder = tmp_path / "claims"
    folder.mkdir()
    (tmp_path / "escape.beat").touch()
    name = f"elsewhere-7-bad{next(_names)}.claim"  # claims are cached by name: a new one
    owner = {"host": "elsewhere", "pid": 7, "beat": name if beat == "itself" else beat}
    (folder / name).write_text(json.dumps(owner) + "\nitem")
    assert running(str(tmp_path)) == set()


def test_the_heartbeat_keeps_this_processs_beat_file_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_claims, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(_claims, "_heartbeat", None)  # a new beating thread, at that pace
    claim = Claim.take(str(tmp_path), ["item"])
    try:
        owner = json.loads(Path(claim.path).read_text().split("\n", 1)[0])
        beat = tmp_path / "claims" / owner["beat"]
        os.utime(beat, (0, 0))
        deadline = time.monotonic() + PATIENCE
        while beat.stat().st_mtime == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.stat().st_mtime > 0
    finally:
        claim.release()


# ---------------------------------------------------------------- claims of a task


class CountsClaims(Step):
    """Records, at each input it is fed, how many claims its folder holds."""

    folder: str = ""

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["folder"]

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        for value in values:
            claims = Path(self.folder).glob("*/code-*/claims/*.claim")
            CALLS.append(("CountsClaims", (value, len(list(claims)))))
            yield value


def test_a_task_claims_its_items_a_chunk_at_a_time_as_the_step_asks(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = _task.Claim.take

    def take(entries_folder: str, uids: Iterable[str]) -> Claim:
        uids = list(uids)
        sizes.append(len(uids))
        return real(entries_folder, uids)

    monkeypatch.setattr(_task.Claim, "take", take)
    step = CountsClaims(folder=str(folder), infra=infra(folder))
    n = 2 * _task.CLAIM_CHUNK + 10
    assert list(step.run_many(range(n))) == list(range(n))
    assert sizes == [_task.CLAIM_CHUNK, _task.CLAIM_CHUNK, 10]
    seen = dict(calls("CountsClaims"))
    assert seen[0] == 1  # the first chunk only, while its items are computed
    assert seen[_task.CLAIM_CHUNK] == 2
    assert seen[n - 1] == 3
    assert not list(folder.rglob("*.claim"))  # all released


def test_claims_are_released_when_an_item_fails(folder: Path) -> None:
    with pytest.raises(ValueError, match="boom -1"):
        list(Fail(infra=infra(folder)).run_many([1, -1, 2]))
    assert not list(folder.rglob("*.claim"))
    assert not list(folder.rglob(".*.tmp"))


def test_live_claims_reads_each_claim_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Claims never change once in place: a waiter polling them does not read them again.
    plant(tmp_path, ["a"])
    plant(tmp_path, ["b"])
    assert running(str(tmp_path)) == {"a", "b"}
    opened: list[str] = []
    real = _claims.open_regular

    def spy(path: str) -> int:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(_claims, "open_regular", spy)
    for _ in range(5):
        assert len(live_claims(str(tmp_path))) == 2
    assert opened == []
