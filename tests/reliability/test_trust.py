"""The trust boundary: cache folders hold pickles; read-only mode with trust=False never unpickles.

A planted frame whose pickle runs code when loaded (well formed, with a valid checksum:
checksums catch accidents, not tampering) shows what trusting a folder means, and that
``trust=False`` refuses it, and pickle entries of the older layout, while still reading array
entries (inline in a frame, or in their own file).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pydantic
import pytest
import xxhash
from assay_steps import _legacy
from layout import ERROR, RESULT, encode, frames, new_process, plant_segment
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


def plant(entries: Path, uid: str, marker: Path, kind: int = RESULT) -> None:
    """Supersede the entry of ``uid`` with a well-formed frame whose pickle runs code."""
    payload = pickle.dumps(Touch(marker))
    plant_segment(entries, [encode(kind, uid, payload, time.time_ns())])


def sweep(folder: Path) -> None:
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder})
    sweep_all(step, ITEMS)


def entry(folder: Path, item: int) -> tuple[Path, str]:
    """The entries folder and the uid of ``item``."""
    handle = ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).lookup(item)
    return handle.paths.entries_folder, handle.uid


def test_the_docs_say_a_cache_folder_is_trusted_like_code() -> None:
    for page in ("docs/guide/cache.md", "packages/steps/README.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert "pickles" in text
        assert "trust it like code" in text or "trusted like code" in text


def test_a_trusted_folder_runs_the_code_of_its_pickles(tmp_path: Path) -> None:
    """What the docs warn about: the checksum verifies, and loading runs the planted code."""
    folder, marker = tmp_path / "cache", tmp_path / "pwned"
    sweep(folder)
    plant(*entry(folder, 1), marker)
    new_process()
    reader = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    reader.run(1)
    assert marker.exists()


def _untrusted(folder: Path) -> ReliabilityPayload:
    infra = {"backend": "Cached", "folder": folder, "mode": "read-only", "trust": False}
    return ReliabilityPayload(infra=infra)


@pytest.mark.parametrize("kind", [RESULT, ERROR], ids=["result", "error"])
def test_read_only_untrusted_refuses_to_unpickle(tmp_path: Path, kind: int) -> None:
    folder, marker = tmp_path / "cache", tmp_path / "pwned"
    sweep(folder)
    plant(*entry(folder, 1), marker, kind)
    new_process()
    reader = _untrusted(folder)
    with pytest.raises(RuntimeError, match="trust=False refuses to unpickle"):
        reader.run(1)
    with pytest.raises(RuntimeError, match="trust=False refuses to unpickle"):
        reader.lookup(1).result()
    assert not marker.exists()
    # array entries are plain .npy data: read, verified, correct
    for item in (0, 3):  # inline in its frame; in a file of its own
        array = reader.run(item)
        assert isinstance(array, np.ndarray)
        assert same(array, expected(item))
    assert not marker.exists()


@pytest.mark.parametrize(
    "magic", [_legacy.PICKLE_MAGIC, _legacy.ERROR_MAGIC], ids=["result", "error"]
)
def test_read_only_untrusted_refuses_pickles_of_the_older_layout(
    tmp_path: Path, magic: bytes
) -> None:
    """An entry file of the one-file-per-item layout (still read) is refused all the same."""
    folder, marker = tmp_path / "cache", tmp_path / "pwned"
    sweep(folder)
    entries, uid = entry(folder, 7)  # never computed: its entry is the planted file
    payload = pickle.dumps(Touch(marker))
    (entries / "cache").mkdir()
    (entries / "cache" / f"{uid}.pkl").write_bytes(
        magic + xxhash.xxh3_128_digest(payload) + payload
    )
    new_process()
    reader = _untrusted(folder)
    assert reader.lookup(7).status == ("error" if magic == _legacy.ERROR_MAGIC else "success")
    with pytest.raises(RuntimeError, match="trust=False refuses to unpickle"):
        reader.run(7)
    assert not marker.exists()


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
    records = [(e, f.uid) for e in folder.glob("cache/*/code-*") for f in frames(e)]
    assert len(records) == 2
    for entries, uid in records:
        plant(entries, uid, marker)
    new_process()
    results = Results.load(folder)
    assert results.counts() == {"success": 2}
    assert len(results.records()) == 2
    assert results.table()
    assert not marker.exists()
