"""Files that are not regular files, named like the store's: refused without blocking.

A FIFO would block a reader forever, a symbolic link could serve another folder's entries as
this one's, a device could be anything. Each is refused without being read: its items are
computed again, or, in read-only mode, an error names the file. Every read here runs in a
thread that must return within seconds (a FIFO opened for reading blocks until a writer comes).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from assay_steps import _catalog, _claims
from steps_testkit import Mult, Ramp, calls, infra
from store_testkit import array_file_of, as_a_new_process, segments, within

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

PATIENCE = 10.0


def run_many(folder: Path, values: list[float], mode: str = "cached") -> list[object]:
    return within(PATIENCE, lambda: list(Mult(infra=infra(folder, mode)).run_many(values)))


def entries_of(folder: Path) -> Path:
    return Mult(infra=infra(folder)).lookup(0.0).paths.entries_folder


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


SPECIAL = [_fifo, _directory, _dangling_link]


# ---------------------------------------------------------------- segments


@pytest.mark.parametrize("make", SPECIAL)
def test_a_special_file_named_like_a_segment_is_refused(
    folder: Path, make: Callable[[Path], None]
) -> None:
    assert run_many(folder, [1.0, 2.0]) == [2.0, 4.0]
    odd = entries_of(folder) / "segments" / "0000000000000000-odd-1-abcdabcd.seg"
    make(odd)
    as_a_new_process()
    assert run_many(folder, [1.0, 2.0, 3.0]) == [2.0, 4.0, 6.0]
    assert run_many(folder, [1.0, 2.0, 3.0], "read-only") == [2.0, 4.0, 6.0]
    assert calls("Mult") == [1.0, 2.0, 3.0]
    assert odd.name in _catalog.catalog_for(str(entries_of(folder).absolute())).refused


def test_a_link_to_another_steps_segment_is_not_read_as_this_steps(tmp_path: Path) -> None:
    # Item uids depend on the input only: another configuration's frames carry the same uids.
    # A link must not bring them in.
    doubled, tripled = tmp_path / "doubled", tmp_path / "tripled"
    assert within(PATIENCE, lambda: Mult(coeff=3, infra=infra(tripled)).run(5.0)) == 15.0
    (other,) = segments(Mult(coeff=3, infra=infra(tripled)).lookup(5.0).paths.entries_folder)
    assert run_many(doubled, [1.0]) == [2.0]
    (entries_of(doubled) / "segments" / other.name).symlink_to(other)
    as_a_new_process()
    assert run_many(doubled, [5.0]) == [10.0]


# ---------------------------------------------------------------- array files


@pytest.mark.parametrize("make", [*SPECIAL, "link"])
def test_a_special_file_in_place_of_an_array_file_is_refused(
    folder: Path, make: Callable[[Path], None] | str
) -> None:
    within(PATIENCE, lambda: Ramp(infra=infra(folder)).run(20000))
    path = array_file_of(Ramp(infra=infra(folder)).lookup(20000))
    if make == "link":  # a link to a whole, valid copy of the file: still refused
        copy = path.with_name("copy.bin")
        shutil.copyfile(path, copy)
        path.unlink()
        path.symlink_to(copy)
    else:
        path.unlink()
        make(path)  # type: ignore[operator]
    as_a_new_process()
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only") as raised:
        within(PATIENCE, lambda: Ramp(infra=infra(folder, "read-only")).run(20000))
    assert path.name in str(raised.value)
    result = within(PATIENCE, lambda: Ramp(infra=infra(folder)).run(20000))
    np.testing.assert_array_equal(result, np.arange(20000.0))


# ---------------------------------------------------------------- the index


@pytest.mark.parametrize("make", [*SPECIAL, "link"])
def test_a_special_file_in_place_of_the_index_is_ignored(
    folder: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], None] | str
) -> None:
    monkeypatch.setattr(_catalog, "SNAPSHOT_FRAMES", 10)
    values = [float(v) for v in range(50)]
    assert run_many(folder, values) == [2 * v for v in values]
    as_a_new_process()
    assert run_many(folder, values) == [2 * v for v in values]  # scans, saves the index
    index = entries_of(folder) / "index"
    assert index.is_file()
    if make == "link":
        index.rename(index.with_name("saved-index"))
        index.symlink_to(index.with_name("saved-index"))
    else:
        index.unlink()
        make(index)  # type: ignore[operator]
    as_a_new_process()
    assert run_many(folder, values, "read-only") == [2 * v for v in values]
    assert calls("Mult") == values


# ---------------------------------------------------------------- claims, old entries, jobs


@pytest.mark.parametrize("make", [*SPECIAL, "link"])
def test_a_special_file_named_like_a_claim_holds_no_item(
    folder: Path, make: Callable[[Path], None] | str
) -> None:
    handle = Mult(infra=infra(folder)).lookup(1.0)
    claims = handle.paths.claims_folder
    claims.mkdir(parents=True)
    odd = claims / "odd-1-abcd-0.claim"
    if make == "link":  # a link to a claim of a live process (this one) naming the item
        real = claims / "real.txt"
        owner = json.dumps({"host": _claims.HOST, "pid": os.getpid()})
        real.write_text(f"{owner}\n{handle.uid}")
        odd.symlink_to(real)
    else:
        make(odd)  # type: ignore[operator]
    assert within(PATIENCE, lambda: handle.status) is None
    assert run_many(folder, [1.0]) == [2.0]
    assert calls("Mult") == [1.0]


@pytest.mark.parametrize("make", [*SPECIAL, "link"])
def test_a_special_file_in_place_of_an_old_entry_is_refused(
    folder: Path, make: Callable[[Path], None] | str
) -> None:
    assert run_many(folder, [9.0]) == [18.0]  # the code version folder exists
    handle = Mult(infra=infra(folder)).lookup(1.0)
    handle.paths.cache_folder.mkdir(parents=True)
    old = handle.paths.cache_folder / f"{handle.uid}.pkl"
    if make == "link":
        target = handle.paths.cache_folder / "elsewhere"
        target.write_bytes(b"ASSAYP1\n" + bytes(16))
        old.symlink_to(target)
    else:
        make(old)  # type: ignore[operator]
    as_a_new_process()
    with pytest.raises(RuntimeError, match=r"corrupt.*read-only") as raised:
        run_many(folder, [1.0], "read-only")
    assert old.name in str(raised.value)
    assert run_many(folder, [1.0]) == [2.0]


@pytest.mark.parametrize("make", [*SPECIAL, "link"])
def test_a_special_file_named_like_a_job_reference_is_ignored(
    folder: Path, make: Callable[[Path], None] | str
) -> None:
    handle = Mult(infra=infra(folder)).lookup(1.0)
    jobs = handle.paths.job_folder
    jobs.mkdir(parents=True)
    odd = jobs / "0000000000000001-abcd1234.json"
    if make == "link":
        real = jobs / "real.txt"
        real.write_text(f'{{"backend": "Cached", "job_id": "1", "uids": ["{handle.uid}"]}}')
        odd.symlink_to(real)
    else:
        make(odd)  # type: ignore[operator]
    from assay_steps._jobrefs import read_job_ref

    assert within(PATIENCE, lambda: read_job_ref(handle.paths, handle.uid)) is None
