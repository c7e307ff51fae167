"""Entries of the older layout (one file per item in ``cache/``): read, cleared, superseded."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash
from assay_steps import LookupHandle
from assay_steps._store import CachedError
from steps_testkit import Fail, Mult, Ramp, calls, infra
from store_testkit import as_a_new_process, flip, python

PICKLE, ERROR = b"ASSAYP1\n", b"ASSAYE1\n"


def old_entry(handle: LookupHandle, value: Any, magic: bytes = PICKLE) -> Path:
    """Write the entry of ``handle`` as an older assay did: magic, xxh3-128, pickle."""
    payload = pickle.dumps(value)
    path = handle.paths.cache_folder / f"{handle.uid}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(magic + xxhash.xxh3_128_digest(payload) + payload)
    return path


def old_array(handle: LookupHandle, array: np.ndarray) -> Path:
    """Write an array entry as an older assay did: ``.npy`` and the ``ASSAYN1`` trailer."""
    head = io.BytesIO()
    np.lib.format.write_array_header_2_0(head, np.lib.format.header_data_from_array_1_0(array))
    header, data = head.getvalue(), array.tobytes()
    sample = data[: 256 * 1024] + data[-256 * 1024 :]
    digest = xxhash.xxh3_128_digest
    trailer = b"ASSAYN1\n" + len(data).to_bytes(8, "little")
    trailer += digest(header) + digest(data) + digest(sample)
    path = handle.paths.cache_folder / f"{handle.uid}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data + trailer)
    return path


@pytest.fixture
def old_folder(folder: Path) -> Path:
    """A cache folder an older assay wrote: its code version folder exists."""
    Mult(infra=infra(folder)).run(99.0)
    return folder


def test_old_entries_are_read_without_recomputing(old_folder: Path) -> None:
    step = Mult(infra=infra(old_folder))
    for value in (1.0, 2.0, 3.0):
        old_entry(step.lookup(value), f"old {value}")
    as_a_new_process()
    fresh = Mult(infra=infra(old_folder, "read-only"))
    assert [fresh.lookup(v).status for v in (1.0, 2.0, 3.0)] == ["success"] * 3
    assert list(fresh.run_many([1.0, 2.0, 3.0])) == ["old 1.0", "old 2.0", "old 3.0"]
    assert calls("Mult") == [99.0]


def test_old_entries_are_read_in_a_folder_without_new_entries(folder: Path) -> None:
    handle = Mult(infra=infra(folder)).lookup(1.0)
    old_entry(handle, "old")
    assert Mult(infra=infra(folder)).run(1.0) == "old"
    assert calls("Mult") == []


def test_an_old_cached_error_is_raised_and_retried(old_folder: Path) -> None:
    handle = Fail(infra=infra(old_folder)).lookup(-1)
    error = CachedError(
        "builtins.ValueError",
        "old failure",
        "Traceback ...",
        pickle.dumps(ValueError("old failure")),
    )
    old_entry(handle, error, magic=ERROR)
    assert handle.status == "error"
    with pytest.raises(ValueError, match="old failure"):
        Fail(infra=infra(old_folder)).run(-1)
    assert calls("Fail") == []
    with pytest.raises(ValueError, match="boom -1"):
        Fail(infra=infra(old_folder, "retry")).run(-1)  # computed again, the new error wins
    assert calls("Fail") == [-1]
    with pytest.raises(ValueError, match="boom -1"):
        Fail(infra=infra(old_folder)).run(-1)


def test_an_old_array_entry_is_read_memory_mapped(old_folder: Path) -> None:
    handle = Ramp(infra=infra(old_folder)).lookup(1000)
    old_array(handle, np.arange(1000, dtype=np.float64) * -1)
    found = Ramp(infra=infra(old_folder, "read-only")).run(1000)
    assert isinstance(found, np.memmap)
    assert not found.flags.writeable
    np.testing.assert_array_equal(found, np.arange(1000.0) * -1)


def test_clear_removes_the_old_file_too(old_folder: Path) -> None:
    step = Mult(infra=infra(old_folder))
    path = old_entry(step.lookup(1.0), "old")
    step.lookup(1.0).clear_cache()
    assert not path.exists()
    assert Mult(infra=infra(old_folder)).lookup(1.0).status is None
    assert Mult(infra=infra(old_folder)).run(1.0) == 2.0
    assert calls("Mult") == [99.0, 1.0]


def test_clear_of_an_item_with_a_new_entry_and_an_old_file_hides_both(old_folder: Path) -> None:
    step = Mult(infra=infra(old_folder))
    path = old_entry(step.lookup(1.0), "old")
    assert Mult(infra=infra(old_folder, "force")).run(1.0) == 2.0
    Mult(infra=infra(old_folder)).lookup(1.0).clear_cache()
    assert not path.exists()
    as_a_new_process()
    assert Mult(infra=infra(old_folder)).lookup(1.0).status is None


def test_a_clear_by_another_process_removes_the_old_file(old_folder: Path) -> None:
    step = Mult(infra=infra(old_folder))
    path = old_entry(step.lookup(1.0), "old")
    assert step.run(1.0) == "old"
    python(
        "import sys; sys.path.insert(0, sys.argv[1]); from steps_testkit import Mult;"
        "Mult(infra={'backend': 'Cached', 'folder': sys.argv[2]}).lookup(1.0).clear_cache()",
        old_folder,
    )
    assert not path.exists()
    assert Mult(infra=infra(old_folder)).lookup(1.0).status is None
    assert Mult(infra=infra(old_folder)).run(1.0) == 2.0


def test_a_new_value_supersedes_the_old_file(old_folder: Path) -> None:
    step = Mult(infra=infra(old_folder))
    old_entry(step.lookup(1.0), "old")
    assert Mult(infra=infra(old_folder, "force")).run(1.0) == 2.0
    assert Mult(infra=infra(old_folder)).run(1.0) == 2.0
    as_a_new_process()
    assert Mult(infra=infra(old_folder, "read-only")).run(1.0) == 2.0


def test_a_new_array_supersedes_an_old_array_file(old_folder: Path) -> None:
    handle = Ramp(infra=infra(old_folder)).lookup(1000)
    old_array(handle, np.zeros(1000))
    assert float(Ramp(infra=infra(old_folder)).run(1000)[5]) == 0.0
    np.testing.assert_array_equal(
        Ramp(infra=infra(old_folder, "force")).run(1000), np.arange(1000.0)
    )
    as_a_new_process()
    np.testing.assert_array_equal(Ramp(infra=infra(old_folder)).run(1000), np.arange(1000.0))


@pytest.mark.parametrize("where", [8, 30, -1])  # the checksum, the payload, its last byte
def test_a_damaged_old_file_is_recomputed_and_read_only_names_it(
    old_folder: Path, where: int
) -> None:
    path = old_entry(Mult(infra=infra(old_folder)).lookup(1.0), "old")
    flip(path, where)
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only") as raised:
        Mult(infra=infra(old_folder, "read-only")).run(1.0)
    assert path.name in str(raised.value)
    assert Mult(infra=infra(old_folder)).run(1.0) == 2.0
    as_a_new_process()
    assert Mult(infra=infra(old_folder, "read-only")).run(1.0) == 2.0


def test_an_old_file_of_another_kind_is_not_an_entry(old_folder: Path) -> None:
    path = old_entry(Mult(infra=infra(old_folder)).lookup(1.0), "old", magic=b"NOTASSAY")
    assert Mult(infra=infra(old_folder)).lookup(1.0).status is None
    assert Mult(infra=infra(old_folder)).run(1.0) == 2.0
    assert path.exists()  # not ours to remove
