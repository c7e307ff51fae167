"""Cache hygiene: the folder marker, `assay cache clear` (confirmed) and `assay cache prune`.

A folder that assay did not create (another tool's `index.sqlite`, a TensorBoard `runs/`, a
dataset in `cache/`) is never modified, by any command; in assay's own folders, `clear` asks
first and `prune` lists before it deletes, keeping the entries the results index refers to.
Entries are packed in segments (pruned by compacting without them); entries of the older
one-file-per-entry layout are still pruned file by file.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from assay_steps import StepPaths
from assay_steps._catalog import forget_catalog
from assay_steps._claims import Claim
from assay_steps._frames import HEADER, encode, frame_length, parse_header
from assay_steps._inspect import entries_folders, packed_entries
from assay_steps._store import EntryStore

from assay import Experiment, Results, grid
from assay._cachefolder import CACHE_MARKER
from assay._cli import main
from assay._folder import cache_clear
from assay._index import ResultsIndex
from assay._marker import MARKER_NAME, ForeignFolderError, claim_folder
from assay._prune import plan_prune
from assay._rows import Outcome
from assay._runs import plan
from assay._schema import INDEX_NAME
from assay._units import format_size, parse_duration, parse_size
from tests.kit.store import finish_writers

OPS = """
from assay_ops import operation


@operation
def square(params, capture):
    capture.metric("value", params["x"] ** 2)
"""

DAY = 86400.0
STEP = "ExperimentRun-" + "0123456789abcdef" * 2


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``: the bytes of files, None for folders."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def _foreign(tmp_path: Path, journal: str = "delete") -> Path:
    """A folder of another tool: its own index.sqlite, a TensorBoard-like runs/, a dataset."""
    folder = tmp_path / "other"
    folder.mkdir()
    db = sqlite3.connect(folder / INDEX_NAME)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")  # a `runs`, not assay's
    db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    db.execute("INSERT INTO runs (name) VALUES ('resnet'), ('vit')")
    db.execute("INSERT INTO meta VALUES ('owner', 'another tool')")
    db.commit()
    db.close()
    (folder / "runs" / "Dec06_resnet").mkdir(parents=True)
    (folder / "runs" / "Dec06_resnet" / "events.out.tfevents.1733472000.host").write_bytes(
        b"\x18\x00brain.Event:2" * 50
    )
    (folder / "cache").mkdir()
    (folder / "cache" / "train-00000.arrow").write_bytes(os.urandom(4096))
    old = time.time() - 400 * DAY  # old enough for any --older-than
    for path in folder.rglob("*"):
        os.utime(path, (old, old))
    return folder


def _experiment(
    tmp_path: Path, write_module: Callable[..., Any], x: list[int], folder: Path | None = None
) -> Experiment:
    module = write_module(OPS, "assay_hygiene_ops")
    folder = tmp_path / "exp" if folder is None else folder
    return Experiment(
        "hygiene", module.square, grid(x=x), replicates=2, folder=folder, progress=False
    )


@pytest.fixture(autouse=True)
def _no_writers_left() -> Iterator[None]:
    yield
    finish_writers()


def _entries(folder: Path) -> dict[str, Path]:
    """The packed entries of an experiment folder (as prune names them), by run id."""
    cache = folder / "cache"
    return {e.uid: f / e.uid for f in entries_folders(cache) for e in packed_entries(f)}


def _sizes(folder: Path) -> dict[Path, int]:
    """The size of each packed entry of an experiment or step cache folder (its frame)."""
    cache = folder / "cache" if (folder / "cache").is_dir() else folder
    return {f / e.uid: e.bytes for f in entries_folders(cache) for e in packed_entries(f)}


def _age(path: Path, days: float) -> None:
    """Make an entry ``days`` old: a file of the older layout by its time, a frame by its stamp."""
    then = time.time() - days * DAY
    if path.is_file():
        os.utime(path, (then, then))
    else:
        _restamp(path.parent, {path.name: int(then * 1e9)})


def _restamp(folder: Path, stamps: dict[str, int]) -> None:
    """Rewrite the frames of the given uids in every segment of ``folder`` with new stamps."""
    for segment in (folder / "segments").glob("*.seg"):
        data, chunks, offset = segment.read_bytes(), [], 0
        while (header := parse_header(data, offset, len(data))) is not None:
            kind, uid_len, stamp, value_len = header
            start = offset + HEADER.size
            uid = data[start : start + uid_len]
            value = data[start + uid_len : start + uid_len + value_len]
            chunks += encode(kind, uid, stamps.get(uid.decode(), stamp), value)
            offset += frame_length(header)
        segment.write_bytes(b"".join(chunks))
    forget_catalog(os.path.abspath(folder))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---------------------------------------------------------------- folders of another tool


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "clear", "{f}", "--yes"],
        ["cache", "prune", "{f}", "--older-than", "1d", "--stale-code", "--yes"],
        ["cache", "prune", "{f}", "--max-size", "0", "--include-indexed", "--yes"],
        ["cache", "info", "{f}"],
        ["cache", "compact", "{f}"],
        ["cache", "migrate", "{f}"],
        ["status", "{f}"],
        ["results", "{f}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_no_command_touches_a_folder_of_another_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], journal: str
) -> None:
    folder = _foreign(tmp_path, journal)
    before = _snapshot(folder)
    assert main([a.replace("{f}", str(folder)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: ForeignFolderError: ")
    assert err.count("\n") == 1
    assert f"folder {str(folder)!r} was not created by assay" in err
    assert _snapshot(folder) == before  # every byte, and no new file (-wal, -shm, marker)


def test_the_library_refuses_a_folder_of_another_tool_too(
    tmp_path: Path, write_module: Callable[..., Any]
) -> None:
    folder = _foreign(tmp_path)
    before = _snapshot(folder)
    with pytest.raises(ForeignFolderError, match="not an assay results index"):
        Results.load(folder)
    with pytest.raises(ForeignFolderError, match="was not created by assay"):
        ResultsIndex(folder)  # create=True: it would have added its tables
    with pytest.raises(ForeignFolderError):
        cache_clear(folder)
    with pytest.raises(ForeignFolderError):
        plan_prune(folder, older_than=0, include_indexed=True)
    experiment = _experiment(tmp_path, write_module, [1], folder)  # a sweep pointed there
    with pytest.raises(ForeignFolderError):
        experiment.run()
    assert _snapshot(folder) == before


def test_a_folder_with_runs_and_cache_but_no_index_is_not_cleared_or_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _foreign(tmp_path)
    (folder / INDEX_NAME).unlink()
    before = _snapshot(folder)
    assert main(["cache", "clear", str(folder), "--yes"]) == 1
    assert "has no results index" in capsys.readouterr().err
    assert main(["cache", "prune", str(folder), "--older-than", "1d", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "neither the .assay-experiment marker" in err
    assert "nor the .assay-cache marker" in err
    assert _snapshot(folder) == before


def test_a_sqlite_file_that_is_not_a_database_is_refused_unchanged(tmp_path: Path) -> None:
    (tmp_path / INDEX_NAME).write_bytes(b"not a database at all")
    with pytest.raises(ForeignFolderError, match="not an SQLite database"):
        ResultsIndex(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_NAME]
    assert (tmp_path / INDEX_NAME).read_bytes() == b"not a database at all"


# ---------------------------------------------------------------- the marker


def test_a_new_experiment_folder_is_marked_before_its_index_is_written(
    tmp_path: Path, write_module: Callable[..., Any]
) -> None:
    experiment = _experiment(tmp_path, write_module, [1])
    experiment.run()
    marker = tmp_path / "exp" / MARKER_NAME
    data = json.loads(marker.read_text())
    assert data["format"] == "assay-experiment"
    assert data["created"].endswith("+00:00")
    assert "assay" in data
    assert not list((tmp_path / "exp").glob(MARKER_NAME + ".*"))  # no temporary file left
    # the marker is written once: another driver on the same folder keeps it
    claim_folder(tmp_path / "exp", create=True)
    assert json.loads(marker.read_text()) == data
    assert len(experiment.run()) == 2


def test_an_index_of_an_older_assay_without_marker_is_adopted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    _experiment(tmp_path, write_module, [1, 2]).run()
    folder = tmp_path / "exp"
    (folder / MARKER_NAME).unlink()  # as a folder made before the marker existed
    assert main(["status", str(folder)]) == 0
    assert "4 runs: pending 0, success 4" in capsys.readouterr().out
    assert (folder / MARKER_NAME).is_file()
    (folder / MARKER_NAME).unlink()
    assert main(["cache", "clear", str(folder), "--yes"]) == 0
    assert not (folder / "cache").exists()
    assert not (folder / INDEX_NAME).exists()


def test_an_assay_shaped_index_without_its_experiment_is_not_adopted(tmp_path: Path) -> None:
    with ResultsIndex(tmp_path) as index:  # the tables, but no experiment ever ran here
        index.plan(plan(grid(n=[1]), replicates=1, seed=0))
    (tmp_path / MARKER_NAME).unlink()
    before = _snapshot(tmp_path)
    with pytest.raises(ForeignFolderError, match="no experiment in its meta table"):
        ResultsIndex(tmp_path, create=False)
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- assay cache clear


def test_clear_without_yes_and_without_a_terminal_refuses_and_keeps_everything(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write_module: Callable[..., Any],
) -> None:
    _experiment(tmp_path, write_module, [1, 2]).run()
    folder = tmp_path / "exp"
    before = _snapshot(folder)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped input is no confirmation
    assert main(["cache", "clear", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("assay: error: UsageError: cache clear would delete ")
    assert "no terminal to confirm on; pass --yes" in err
    assert _snapshot(folder) == before


def test_clear_on_a_terminal_lists_and_asks(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write_module: Callable[..., Any],
) -> None:
    _experiment(tmp_path, write_module, [1, 2]).run()
    folder = tmp_path / "exp"
    before = _snapshot(folder)
    cache_bytes = sum(p.stat().st_size for p in (folder / "cache").rglob("*") if p.is_file())
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert main(["cache", "clear", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "cache/" in out
    assert format_size(cache_bytes) in out
    assert INDEX_NAME in out
    assert "? [y/N]" in out
    assert "nothing deleted" in out
    assert _snapshot(folder) == before

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert main(["cache", "clear", str(folder)]) == 0
    assert "cleared the cache and results index" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [MARKER_NAME]


def test_clear_with_yes_clears_and_the_folder_stays_assay_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    experiment = _experiment(tmp_path, write_module, [1, 2])
    experiment.run()
    folder = tmp_path / "exp"
    (folder / "notes.txt").write_text("mine")
    assert main(["cache", "clear", str(folder), "--yes"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [MARKER_NAME, "notes.txt"]
    assert experiment.run().counts() == {"success": 4}  # a fresh start in the same folder


# ---------------------------------------------------------------- assay cache prune


def _swept(tmp_path: Path, write_module: Callable[..., Any]) -> tuple[Path, dict[str, Path]]:
    """A real sweep of 6 runs whose first 3 (in planning order) are not finished in the index."""
    experiment = _experiment(tmp_path, write_module, [1, 2, 3])
    experiment.run()
    finish_writers()
    folder = tmp_path / "exp"
    with ResultsIndex(folder, create=False) as index:
        index.mark([s.run_id for s in experiment.specs[:3]], "cancelled")
    entries = _entries(folder)
    assert sorted(entries) == sorted(s.run_id for s in experiment.specs)
    return folder, {s.run_id: entries[s.run_id] for s in experiment.specs}


def _gone(folder: Path, entries: dict[str, Path]) -> list[str]:
    """The run ids of ``entries`` that the cache no longer holds; the others still read."""
    left = _entries(folder)
    for run_id in left:
        version = left[run_id].parent
        paths = StepPaths(version.parent.parent, version.parent.name, version.name[5:])
        found = EntryStore(paths).read(run_id)
        assert found is not None
        assert found[0] == "success"
    return [run_id for run_id in entries if run_id not in left]


def test_prune_is_a_dry_run_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    folder, entries = _swept(tmp_path, write_module)
    for path in entries.values():
        _age(path, 40)
    before = _snapshot(folder)
    assert main(["cache", "prune", str(folder), "--older-than", "30d"]) == 0
    out = capsys.readouterr().out
    unindexed = list(entries.values())[:3]
    sizes = _sizes(folder)
    size = format_size(sum(sizes[p] for p in unindexed))
    assert f"3 entries, {size} of the " in out
    assert "dry run: pass --yes to delete" in out
    assert "older than 30d" in out
    assert "kept 3 entries of runs in the results index" in out
    for path in unindexed:
        assert path.name in out
    assert _snapshot(folder) == before  # nothing deleted


def test_prune_older_than_deletes_only_old_entries_and_keeps_indexed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    folder, entries = _swept(tmp_path, write_module)
    ids = list(entries)
    _age(entries[ids[0]], 40)  # not indexed, old: goes
    _age(entries[ids[1]], 10)  # not indexed, young: stays
    _age(entries[ids[3]], 40)  # indexed, old: stays unless --include-indexed
    assert main(["cache", "prune", str(folder), "--older-than", "30d", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 entry" in out
    assert "kept 1 entry of runs in the results index" in out
    assert _gone(folder, entries) == [ids[0]]

    assert main(["cache", "prune", str(folder), "--older-than", "30d", "--include-indexed"]) == 0
    assert _gone(folder, entries) == [ids[0]]  # a dry run still
    argv = ["cache", "prune", str(folder), "--older-than", "4w", "--include-indexed", "--yes"]
    assert main(argv) == 0
    assert _gone(folder, entries) == [ids[0], ids[3]]
    assert Results.load(folder).counts() == {"cancelled": 3, "success": 3}  # the index stays


def test_prune_max_size_drops_the_oldest_entries_first(
    tmp_path: Path, write_module: Callable[..., Any]
) -> None:
    folder, entries = _swept(tmp_path, write_module)
    for days, path in enumerate(reversed(list(entries.values()))):
        _age(path, days + 1)  # the first planned run is the oldest
    files = [p for p in (folder / "cache").rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    ids = list(entries)
    sizes = _sizes(folder)
    two_oldest = sizes[entries[ids[0]]] + sizes[entries[ids[1]]]
    planned = plan_prune(folder, max_size=total - two_oldest)
    assert [e.path for e in planned.entries] == [entries[ids[0]], entries[ids[1]]]
    assert planned.bytes == two_oldest
    assert planned.cache_bytes == total
    assert {e.reason for e in planned.entries} == {f"cache over {format_size(total - two_oldest)}"}
    # a limit that only the indexed entries could meet: every unindexed entry goes, no more
    planned = plan_prune(folder, max_size="1k")
    assert [e.path for e in planned.entries] == [entries[i] for i in ids[:3]]
    assert planned.kept == sorted(entries[i] for i in ids[3:])
    assert len(plan_prune(folder, max_size=0, include_indexed=True)) == 6
    assert (
        main(["cache", "prune", str(folder), "--max-size", f"{total - two_oldest}", "--yes"]) == 0
    )
    assert _gone(folder, entries) == ids[:2]
    assert sum(p.stat().st_size for p in (folder / "cache").rglob("*") if p.is_file()) <= (
        total - two_oldest
    )


def _code(step: Path, version: str, created: str, keeps: str | None = None) -> Path:
    folder = step / f"code-{version}"
    folder.mkdir(parents=True)
    (folder / "code.json").write_text(
        json.dumps(
            {
                "format": "assay-code-1",
                "version": version,
                "created": created,
                "keeps": keeps,
                "fingerprint": None,
                "pinned": None,
            }
        )
    )
    return folder


def _put(version: Path, uid: str, value: bytes, layout: str = "packed") -> Path:
    """Write an entry of a code version: packed in a segment, or a file of the older layout."""
    if layout == "older":
        (version / "cache").mkdir(exist_ok=True)
        path = version / "cache" / f"{uid}.pkl"
        path.write_bytes(value)
        return path
    step = version.parent
    store = EntryStore(StepPaths(step.parent, step.name, version.name.removeprefix("code-")))
    store.write_result(uid, value)
    store.sync()
    return version / uid


@pytest.fixture
def claims() -> Iterator[list[Claim]]:
    """Claims taken by a test (a run going on), released after it."""
    taken: list[Claim] = []
    yield taken
    for claim in taken:
        claim.release()


def _step_cache(tmp_path: Path, claims: list[Claim]) -> Path:
    """A step cache folder as a Step's infra.folder holds it, with five code versions."""
    cache = tmp_path / "steps"
    step = cache / ("Normalize-" + "ab" * 16)
    step.mkdir(parents=True)
    (cache / CACHE_MARKER).write_text(json.dumps({"format": "assay-cache"}))
    (step / "config.json").write_text("{}")
    v1 = _code(step, "v1", "2024-01-01T00:00:00+00:00")
    v2 = _code(step, "v2", "2024-02-01T00:00:00+00:00")
    v3 = _code(step, "v3", "2024-03-01T00:00:00Z", keeps="v2")
    busy = _code(step, "busy", "2023-12-01T00:00:00+00:00")
    locked = _code(step, "locked", "2023-11-01T00:00:00+00:00")
    for version in (v1, v2, v3, busy):
        for item in ("a", "b"):
            _put(version, item, b"x" * 100)
    for item in ("a", "b"):  # a version of the older layout
        _put(locked, item, b"x" * 100, "older")
    claims.append(Claim.take(str(busy), ["c"]))  # a run of that code is going on
    (locked / "locks").mkdir()
    (locked / "locks" / "c.lock").write_text("host 1")  # an older assay's run, going on
    (step / "code-broken").mkdir()
    (step / "code-broken" / "code.json").write_text("{not json")
    finish_writers()
    return cache


def test_prune_stale_code_removes_whole_stale_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims: list[Claim]
) -> None:
    cache = _step_cache(tmp_path, claims)
    step = next(cache.glob("Normalize-*"))
    before = _snapshot(cache)
    assert main(["cache", "prune", str(cache), "--stale-code"]) == 0
    out = capsys.readouterr().out
    assert "stale code" in out
    assert "code-v1/" in out
    v1_bytes = sum(p.stat().st_size for p in (step / "code-v1").rglob("*") if p.is_file())
    assert f"1 entry, {format_size(v1_bytes)} of the " in out
    assert _snapshot(cache) == before

    assert main(["cache", "prune", str(cache), "--stale-code", "--yes"]) == 0
    assert "deleted 1 entry" in capsys.readouterr().out
    names = sorted(p.name for p in step.iterdir())
    # v3 is current, v2 is what it keeps, busy and locked are in use, broken cannot be read
    assert names == [
        "code-broken",
        "code-busy",
        "code-locked",
        "code-v2",
        "code-v3",
        "config.json",
    ]


def test_an_interrupted_stale_code_removal_is_finished_by_the_next_prune(
    tmp_path: Path, claims: list[Claim]
) -> None:
    cache = _step_cache(tmp_path, claims)
    step = next(cache.glob("Normalize-*"))
    (step / "code-v1").rename(step / ".trash-code-v1-0badc0de")  # renamed aside, then killed
    planned = plan_prune(cache, older_than="1w")
    assert [(e.path.name, e.kind) for e in planned.entries] == [
        (".trash-code-v1-0badc0de", "trash")
    ]
    planned.apply()
    assert not list(step.glob(".trash-*"))


@pytest.mark.parametrize("layout", ["packed", "older"])
def test_stale_code_keeps_the_entries_the_index_refers_to(tmp_path: Path, layout: str) -> None:
    specs = plan(grid(n=[1, 2]), replicates=1, seed=0)
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.set_meta("experiment", {"name": "e", "operation": "m:f"})
        index.store([Outcome(specs[0].run_id, "success", {}, 0.1, None, "h", None)])
    step = tmp_path / "cache" / STEP
    old = _code(step, "old", "2024-01-01T00:00:00+00:00")
    new = _code(step, "new", "2024-06-01T00:00:00+00:00")
    put = {(v, s.run_id): _put(v, s.run_id, b"r" * 10, layout) for v in (old, new) for s in specs}
    finish_writers()
    planned = plan_prune(tmp_path, stale_code=True)
    # the stale version stays for the entry of the finished run; its other entry goes
    assert [e.path for e in planned.entries] == [put[old, specs[1].run_id]]
    assert planned.kept == [put[old, specs[0].run_id]]
    planned = plan_prune(tmp_path, stale_code=True, include_indexed=True)
    assert [(e.path, e.kind) for e in planned.entries] == [(old, "version")]
    planned.apply()
    assert sorted(p.name for p in step.iterdir()) == ["code-new"]
    # the experiment's step cache pruned directly still keeps what the index refers to
    (tmp_path / "cache" / CACHE_MARKER).write_text("{}")
    for spec in specs:
        _age(put[new, spec.run_id], 100)
    planned = plan_prune(tmp_path / "cache", older_than="30d")
    assert [e.uid for e in planned.entries] == [specs[1].run_id]
    planned.apply()
    assert plan_prune(tmp_path / "cache", older_than="30d").kept == [put[new, specs[0].run_id]]


def _write_again(entry: Path) -> None:
    """Write an entry again in another process, which then ends (its segment is finished)."""
    version = entry.parent

    def write() -> None:
        _put(version, entry.name, b"a new value")

    process = multiprocessing.get_context("fork").Process(target=write)
    process.start()
    process.join()
    assert process.exitcode == 0


def test_prune_never_deletes_an_entry_written_again_after_the_plan(
    tmp_path: Path, claims: list[Claim]
) -> None:
    cache = _step_cache(tmp_path, claims)
    packed = sorted(_sizes(cache))
    files = sorted(cache.rglob("cache/*.pkl"))
    entries = packed + files
    for path in entries:
        _age(path, 50)
    planned = plan_prune(cache, older_than="30d")
    assert len(planned) == len(entries)
    _write_again(packed[0])  # a worker wrote it again meanwhile, and ended
    _put(packed[1].parent, packed[1].name, b"a new value")  # this process is writing it
    files[0].write_bytes(b"a new value")  # an older assay wrote it again
    deleted = planned.apply()
    assert len(deleted) == len(entries) - 3
    left = sorted(_sizes(cache)) + sorted(p for p in files if p.exists())
    assert left == [packed[0], packed[1], files[0]]


def test_prune_a_folder_without_index_keeps_its_entries_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    _experiment(tmp_path, write_module, [1]).run()
    finish_writers()
    folder = tmp_path / "exp"
    for path in folder.glob(INDEX_NAME + "*"):
        path.unlink()
    assert main(["cache", "prune", str(folder), "--older-than", "0s", "--yes"]) == 1
    assert "which cache entries hold results is unknown" in capsys.readouterr().err
    assert len(_entries(folder)) == 2
    assert len(plan_prune(folder, older_than=0, include_indexed=True)) == 2


def test_prune_leaves_the_entries_of_a_running_writer_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_module: Callable[..., Any]
) -> None:
    experiment = _experiment(tmp_path, write_module, [1])
    experiment.run()  # this process's segment is still open: a sweep going on
    folder = tmp_path / "exp"
    argv = ["cache", "prune", str(folder), "--older-than", "0s", "--include-indexed", "--yes"]
    assert main(argv) == 0
    assert "left 2 entries alone: in segments that running processes still write" in (
        capsys.readouterr().out
    )
    assert len(_entries(folder)) == 2
    finish_writers()  # the sweep's process ended
    assert main(argv) == 0
    assert "deleted 2 entries" in capsys.readouterr().out
    assert _entries(folder) == {}


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--older-than", "3x", "like 30d, 12h, 90m or 2w"),
        ("--older-than", "30", "like 30d, 12h, 90m or 2w"),
        ("--max-size", "lots", "like 500M, 2G or 10k"),
        ("--max-size", "2X", "like 500M, 2G or 10k"),
    ],
)
def test_bad_durations_and_sizes_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", "prune", str(tmp_path), option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {value!r} is not a " in err
    assert expected in err


def test_prune_needs_a_criterion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "prune", str(tmp_path)]) == 1
    assert "--older-than DURATION, --max-size SIZE or --stale-code" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs a criterion"):
        plan_prune(tmp_path)
    with pytest.raises(ValueError, match="older_than = -1"):
        plan_prune(tmp_path, older_than=-1)
    with pytest.raises(ValueError, match="max_size: '2X' is not a size"):
        plan_prune(tmp_path, max_size="2X")


def test_durations_and_sizes() -> None:
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("90m") == 90 * 60
    assert parse_duration("2w") == 14 * DAY
    assert parse_duration(" 1.5h ") == 5400
    assert parse_size("500M") == 500 * 2**20
    assert parse_size("2G") == 2 * 2**30
    assert parse_size("10k") == 10 * 1024
    assert parse_size("10KiB") == 10 * 1024
    assert parse_size("123") == 123
    for bad in ("", "d", "3 days", "-1d", "1e3s"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    for bad in ("", "G", "1P", "-5M", "five"):
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(bad)


def test_a_version_kept_by_a_kept_version_is_not_stale(tmp_path: Path) -> None:
    step = tmp_path / "steps" / ("Scale-" + "cd" * 16)
    _code(step, "a", "2024-01-01T00:00:00+00:00")
    _code(step, "b", "2024-02-01T00:00:00+00:00")
    _code(step, "c", "2024-03-01T00:00:00+00:00", keeps="b")
    _code(step, "d", "2024-04-01T00:00:00+00:00", keeps="c")
    (tmp_path / "steps" / CACHE_MARKER).write_text("{}")
    planned = plan_prune(tmp_path / "steps", stale_code=True)
    assert [e.path.name for e in planned.entries] == ["code-a"]
