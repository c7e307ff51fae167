"""The trust boundary: cache folders hold pickles; read-only mode with trust=False never unpickles.

A planted entry whose pickle runs code when loaded (with a valid checksum: checksums catch
accidents, not tampering) shows what trusting a folder means, and that ``trust=False``
refuses it while still reading array entries.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pydantic
import pytest
from assay_steps import _store
from reliability_steps import ReliabilityPayload, expected, same, sweep_all

from assay import Experiment, Results, explicit

ROOT = Path(__file__).resolve().parents[2]
ITEMS = list(range(6))


class Touch:
    """Unpickling this creates a file: a stand-in for arbitrary code in a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def plant(entry: Path, marker: Path, magic: bytes = _store.PICKLE_MAGIC) -> None:
    """Replace ``entry`` with a well-formed entry (right checksum) whose pickle runs code."""
    payload = pickle.dumps(Touch(marker))
    entry.unlink()
    entry.with_suffix(".pkl").write_bytes(magic + _store._digest(payload) + payload)


def sweep(folder: Path) -> None:
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder})
    sweep_all(step, ITEMS)


def entry(folder: Path, item: int) -> Path:
    handle = ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).lookup(item)
    (path,) = handle.paths.cache_folder.glob(f"{handle.uid}.*")
    return path


def test_the_docs_say_a_cache_folder_is_trusted_like_code() -> None:
    for page in ("docs/guide/cache.md", "packages/steps/README.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert "pickles" in text
        assert "trust it like code" in text or "trusted like code" in text


def test_a_trusted_folder_runs_the_code_of_its_pickles(tmp_path: Path) -> None:
    """What the docs warn about: the checksum verifies, and loading runs the planted code."""
    folder, marker = tmp_path / "cache", tmp_path / "pwned"
    sweep(folder)
    plant(entry(folder, 1), marker)
    reader = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    reader.run(1)
    assert marker.exists()


@pytest.mark.parametrize(
    "magic", [_store.PICKLE_MAGIC, _store.ERROR_MAGIC], ids=["result", "error"]
)
def test_read_only_untrusted_refuses_to_unpickle(tmp_path: Path, magic: bytes) -> None:
    folder, marker = tmp_path / "cache", tmp_path / "pwned"
    sweep(folder)
    plant(entry(folder, 1), marker, magic)
    infra = {"backend": "Cached", "folder": folder, "mode": "read-only", "trust": False}
    reader = ReliabilityPayload(infra=infra)
    with pytest.raises(RuntimeError, match="trust=False refuses to unpickle"):
        reader.run(1)
    with pytest.raises(RuntimeError, match="trust=False refuses to unpickle"):
        reader.lookup(1).result()
    assert not marker.exists()
    # array entries are plain .npy data: read, verified, correct
    array = reader.run(0)
    assert isinstance(array, np.ndarray)
    assert same(array, expected(0))


def test_untrusted_needs_read_only_mode(tmp_path: Path) -> None:
    infra = {"backend": "Cached", "folder": tmp_path, "mode": "read-only", "trust": False}
    assert ReliabilityPayload(infra=infra).infra.trust is False  # type: ignore[union-attr]
    with pytest.raises(pydantic.ValidationError, match=r"trust=False.*read-only"):
        ReliabilityPayload(infra={"backend": "Cached", "folder": tmp_path, "trust": False})


def test_results_load_reads_only_the_json_index(tmp_path: Path) -> None:
    """Results of an experiment come from SQLite and JSON: planted pickles are never loaded."""
    folder, marker = tmp_path / "exp", tmp_path / "pwned"
    Experiment("trust", "reliability_steps:noisy", explicit([{"n": 4}, {"n": 5}]), folder=folder,
               progress=False).run()  # fmt: skip
    entries = list(folder.glob("cache/*/*/cache/*.pkl"))
    assert len(entries) == 2
    for path in entries:
        plant(path, marker)
    results = Results.load(folder)
    assert results.counts() == {"success": 2}
    assert len(results.records()) == 2
    assert results.table()
    assert not marker.exists()
