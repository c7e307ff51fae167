"""An archived experiment folder can be read where it cannot be written.

Commands that only read open the results index read-only: a folder on a read-only file system,
or without write permission, is read by ``Results.load``, ``assay status``, ``assay results``
and ``assay cache info``; a file that cannot be opened is named in the error. The cache's
segments are read without writing anything either, and a compaction with nothing to merge
writes nothing.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit import count, metrics_by_run

from assay import Experiment, Results, explicit
from assay._cli import main
from tests.kit.store import finish_writers


def _sweep(folder: Path) -> dict[str, object]:
    experiment = Experiment(
        "archive",
        "reliability_steps:noisy",
        explicit([{"n": n} for n in (5, 6, 7)]),
        folder=folder,
        progress=False,
    )
    metrics = metrics_by_run(experiment.run())
    # The sweep's process ends: its segment is finished, as in any archived folder.
    finish_writers()
    return metrics


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Path, dict[str, object]]]:
    """An experiment folder that cannot be written: a read-only bind mount as root, else 0555."""
    source = tmp_path / "source"
    clean = _sweep(source)
    if os.geteuid() != 0:
        for path in [source, *source.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield source, clean
        finally:
            for path in [source, *source.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    mount = tmp_path / "archive"
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        yield mount, clean
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)  # a file left open


def test_an_archive_is_read_by_results_and_the_commands(
    archive: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, clean = archive
    with pytest.raises(OSError, match=r"Read-only file system|Permission denied") as refused:
        (folder / "probe").write_text("")
    assert refused.value.errno in (errno.EROFS, errno.EACCES)
    before = _files(folder)
    count("read-only folders read")
    results = Results.load(folder)
    assert metrics_by_run(results) == clean
    assert len(results.records()) == 3
    capsys.readouterr()
    assert main(["status", str(folder)]) == 0
    assert "3 runs: pending 0, success 3" in capsys.readouterr().out
    assert main(["results", str(folder), "--json"]) == 0
    assert {row["run_id"] for row in json.loads(capsys.readouterr().out)} == set(clean)
    assert main(["cache", "info", str(folder)]) == 0
    info = capsys.readouterr().out
    assert "runs: 3" in info
    row = next(line for line in info.splitlines() if "ExperimentRun-" in line)
    assert [cell.strip() for cell in row.split("│")][2:4] == ["3", "0"]  # entries, errors
    assert main(["cache", "compact", str(folder)]) == 0  # one finished segment: nothing to do
    assert "nothing to compact" in capsys.readouterr().out
    assert main(["cache", "explain", str(folder)]) == 0
    assert "3 run(s)" in capsys.readouterr().out
    assert main(["cache", "prune", str(folder), "--older-than", "0s"]) == 0  # a dry run
    assert "kept 3 entries of runs in the results index" in capsys.readouterr().out
    assert _files(folder) == before


def test_an_archive_with_a_live_write_ahead_log_is_read(tmp_path: Path) -> None:
    """Copied while the driver ran: the -wal and -shm files came along, and hold runs."""
    folder = tmp_path / "exp"
    clean = _sweep(folder)
    holder = sqlite3.connect(folder / "index.sqlite")  # keeps the log from being checkpointed
    holder.execute("PRAGMA wal_autocheckpoint=0")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    holder.close()
    assert metrics_by_run(Results.load(copy)) == clean


def test_an_index_that_cannot_be_opened_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exp"
    _sweep(folder)
    real = sqlite3.connect

    def refused(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        if "index.sqlite" in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", refused)
    index = str(folder / "index.sqlite")
    with pytest.raises(sqlite3.OperationalError, match=rf"{index}.*unable to open"):
        Results.load(folder)
    assert main(["status", str(folder)]) == 1
    assert index in capsys.readouterr().err


def test_an_index_a_killed_driver_left_without_its_tables_reads_as_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Killed after creating index.sqlite (and switching it to WAL), before writing its tables:
    # nothing was recorded, and readers say so instead of failing on a missing table.
    folder = tmp_path / "killed"
    _sweep(folder)
    (folder / "index.sqlite").unlink()
    with sqlite3.connect(folder / "index.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")
    assert len(Results.load(folder)) == 0
    assert main(["status", str(folder)]) == 0
    assert "0" in capsys.readouterr().out
    assert len(_sweep(folder)) == 3  # a plain rerun then completes the folder
