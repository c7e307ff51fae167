"""The storage failing (full disk, quota, I/O error, read-only file system): no failed run.

Such an ``OSError`` propagates out of ``run`` instead of becoming a ``failed`` record, naming
the file it could not write; any other exception of the operation is still its failure.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from assay_ops import Capture, Runtime, _artifactfiles, is_infrastructure_error, operation

STORAGE = [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS]


class _FullDisk:
    """Stands for ``os`` in the artifact writer: flushing a file fails with ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        raise OSError(self.code, os.strerror(self.code))  # no file name, as the system says it


@operation
def saves(runtime: Runtime, capture: Capture) -> None:
    (runtime.scratch_dir / "work.txt").write_text("temporary")
    capture.metric("loss", 0.5)
    capture.artifact("weights.bin", b"\0" * 4096)


@pytest.mark.parametrize("code", STORAGE, ids=errno.errorcode.get)
def test_a_storage_failure_while_writing_an_artifact_propagates_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(_artifactfiles, "os", _FullDisk(code))
    (tmp_path / "scratch").mkdir()
    runtime = Runtime(tmp_path / "run", scratch_root=tmp_path / "scratch")
    with pytest.raises(OSError, match=os.strerror(code)) as raised:
        saves.run(runtime=runtime)
    assert raised.value.errno == code
    target = tmp_path / "run" / "artifacts" / "weights.bin"
    assert raised.value.filename == str(target)
    assert str(target) in str(raised.value)
    assert list((tmp_path / "run" / "artifacts").iterdir()) == []  # nothing half-written
    assert list((tmp_path / "scratch").iterdir()) == []  # the scratch folder is removed


@pytest.mark.parametrize("code", STORAGE, ids=errno.errorcode.get)
def test_a_storage_failure_raised_by_the_operation_itself_propagates(code: int) -> None:
    @operation
    def checkpoints() -> None:
        raise OSError(code, os.strerror(code), "checkpoint.pt")

    with pytest.raises(OSError, match=r"checkpoint\.pt") as raised:
        checkpoints.run()
    assert raised.value.errno == code


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(errno.ENOENT, "No such file or directory", "data.csv"),
        PermissionError(errno.EACCES, "Permission denied", "/etc/shadow"),
        OSError("an OSError without errno"),
        ValueError("not an OSError"),
    ],
    ids=lambda error: type(error).__name__ + str(getattr(error, "errno", "")),
)
def test_any_other_error_of_the_operation_is_its_failed_record(error: Exception) -> None:
    @operation
    def fails(capture: Capture) -> None:
        capture.metric("loss", 0.5)
        raise error

    record = fails.run()
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type.endswith(type(error).__qualname__)
    assert record.metrics == {"loss": [0.5]}


def test_is_infrastructure_error_tells_storage_failures_from_the_rest() -> None:
    for code in STORAGE:
        assert is_infrastructure_error(OSError(code, os.strerror(code)))
    assert not is_infrastructure_error(FileNotFoundError(errno.ENOENT, "missing"))
    assert not is_infrastructure_error(OSError("no errno"))
    assert not is_infrastructure_error(ValueError(errno.ENOSPC))
