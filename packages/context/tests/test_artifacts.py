"""ArtifactLog: kinds of data, metadata, order, name validation, immutability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from assay_context import ArtifactLog, ContextMutationError
from hypothesis import given
from hypothesis import strategies as st


def test_bytes_text_path_and_object_artifacts_in_order(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"\x00\x01")
    log = ArtifactLog()
    log.add("raw.bin", bytearray(b"abc"), metadata={"format": "raw"})
    log.add("notes.txt", "hello")
    log.add("weights.bin", file)
    log.add("config.pkl", {"lr": 0.1})
    assert [r.name for r in log] == ["raw.bin", "notes.txt", "weights.bin", "config.pkl"]
    assert [r.kind for r in log] == ["bytes", "text", "path", "object"]
    assert log["raw.bin"].data == b"abc"
    assert isinstance(log["raw.bin"].data, bytes)
    assert log["raw.bin"].metadata == {"format": "raw"}
    assert log["weights.bin"].data == file.absolute()
    assert log["config.pkl"].data == {"lr": 0.1}
    assert log.names() == ("raw.bin", "notes.txt", "weights.bin", "config.pkl")
    assert len(log) == 4


def test_relative_paths_are_kept_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    log = ArtifactLog()
    log.add("f.txt", Path("f.txt"))
    assert log["f.txt"].data == tmp_path / "f.txt"
    assert log["f.txt"].data.is_absolute()


def test_a_missing_file_is_refused_naming_artifact_and_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"artifact 'x'.*nope"):
        ArtifactLog().add("x", tmp_path / "nope")


def test_arrays_are_kept_as_read_only_copies() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(3)
    log = ArtifactLog()
    log.add("a.npy", array)
    array[0] = 7
    stored = log["a.npy"].data
    assert log["a.npy"].kind == "array"
    assert stored.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="read-only"):
        stored[0] = 1


def test_objects_are_private_copies() -> None:
    state = {"step": [1]}
    log = ArtifactLog()
    log.add("state.pkl", state)
    state["step"].append(2)
    assert log["state.pkl"].data == {"step": [1]}


def test_unpicklable_objects_are_refused_naming_the_artifact() -> None:
    with pytest.raises(TypeError, match=r"artifact 'fn.pkl'.*cannot be pickled"):
        ArtifactLog().add("fn.pkl", lambda: None)


def test_a_name_can_be_used_once() -> None:
    log = ArtifactLog()
    log.add("a.txt", b"1")
    with pytest.raises(ContextMutationError, match=r"'a.txt'"):
        log.add("a.txt", b"2")
    assert log["a.txt"].data == b"1"


@pytest.mark.parametrize(
    "name", ["", "   ", ".", "..", "../x", "a/b", "a\\b", "/abs", "x/..", "a..b", "nul\0", "C:x"]
)
def test_unsafe_names_are_refused(name: str) -> None:
    log = ArtifactLog()
    with pytest.raises(ValueError, match=r"artifact name .*not valid"):
        log.add(name, b"x")
    assert len(log) == 0


def test_non_string_names_are_refused() -> None:
    with pytest.raises(TypeError, match="expected a str"):
        ArtifactLog().add(Path("a"), b"x")  # type: ignore[arg-type]


@given(st.text(min_size=1, max_size=20))
def test_accepted_names_are_single_safe_path_components(name: str) -> None:
    log = ArtifactLog()
    try:
        log.add(name, b"x")
    except ValueError:
        return
    assert Path(name).name == name
    assert ".." not in name
    assert name.strip()


def test_metadata_is_frozen_and_validated() -> None:
    meta: dict[str, Any] = {"shape": [2, 3]}
    log = ArtifactLog()
    log.add("a", b"", metadata=meta)
    meta["shape"].append(4)
    assert log["a"].metadata == {"shape": [2, 3]}
    with pytest.raises(TypeError):
        log["a"].metadata["shape"] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        log["a"].metadata["shape"].append(4)
    with pytest.raises(TypeError, match="artifact 'b': metadata"):
        log.add("b", b"", metadata={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="artifact 'c': metadata"):
        log.add("c", b"", metadata={"x": object()})


def test_records_cannot_be_reassigned() -> None:
    log = ArtifactLog()
    log.add("a", b"x", step_name="train")
    record = log["a"]
    assert record.step_name == "train"
    with pytest.raises(AttributeError):
        record.data = b"y"  # type: ignore[misc]


def test_lookup_contains_get_clear_and_missing_names() -> None:
    log = ArtifactLog()
    log.add("a", b"x")
    assert "a" in log
    assert log.get("b") is None
    with pytest.raises(KeyError, match="no artifact named 'b'"):
        log["b"]
    log.clear()
    assert len(log) == 0
    log.add("a", b"again")
    assert log["a"].data == b"again"


def test_extend_adds_records_and_refuses_clashes_atomically() -> None:
    main, worker = ArtifactLog(), ArtifactLog()
    main.add("a", b"1")
    worker.add("b", b"2")
    main.extend(worker)
    assert main.names() == ("a", "b")
    clash = ArtifactLog()
    clash.add("c", b"3")
    clash.add("a", b"4")
    with pytest.raises(ContextMutationError, match="'a'"):
        main.extend(clash)
    assert main.names() == ("a", "b")


def test_records_compare_by_value_as_in_the_reference() -> None:
    np = pytest.importorskip("numpy")
    from assay_context import ArtifactRecord

    log = ArtifactLog()
    log.add("a.bin", b"x", step_name="fit")
    log.add("w.npy", np.arange(3))
    log.add("cfg.pkl", {"lr": 0.1}, metadata={"format": "pickle"})
    again = ArtifactLog()
    again.add("a.bin", b"x", step_name="fit")
    again.add("w.npy", np.arange(3))
    again.add("cfg.pkl", {"lr": 0.1}, metadata={"format": "pickle"})
    # What a crystallize test writes: its ArtifactRecord is a dataclass compared by fields.
    assert log["a.bin"] == ArtifactRecord("a.bin", b"x", "fit")
    assert list(log) == list(again)  # arrays compare by dtype, shape and content
    assert log["a.bin"] != ArtifactRecord("a.bin", b"x", "other")
    assert log["w.npy"] != ArtifactRecord("w.npy", np.arange(3.0), kind="array")  # dtype counts
    with pytest.raises(TypeError, match="unhashable"):
        hash(log["a.bin"])  # equal by value, like the reference's records: not hashable
