"""Clear errors and safe output: limits checked where values enter, strict JSON, safe CSV.

Values nested thousands of levels deep, names too long for the file system in bytes, seeds
outside the range of a seed sequence: each is refused up front with a message naming the key,
the value and the limit, instead of failing later with a bare ``RecursionError``, an
``ENAMETOOLONG`` or a failed record for every run. ``assay results`` writes JSON that strict
parsers read and CSV that spreadsheets do not evaluate. Temporary files that a killed writer
left beside the artifacts are removed once they are old enough to belong to nobody.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
from assay_context import ArtifactLog, FrozenContext
from assay_ops import Capture, Runtime, SeedBundle, canonical_bytes, operation
from assay_steps._uid import uid_of
from audit import count

from assay import Experiment, explicit, grid
from assay._cli import main
from assay._index import ResultsIndex
from assay._rows import Outcome
from assay._runs import RunSpec

DEMO = "assay._demo:estimate_pi"


def nested(levels: int) -> Any:
    """A list nested ``levels`` deep: ``nested(2) == [[0]]``."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


# ---------------------------------------------------------------- nesting depth


def test_deep_params_name_the_parameter_the_depth_and_the_limit(tmp_path: Path) -> None:
    count("hostile inputs", 3)
    deep = nested(5000)
    expected = "is nested 5000 levels deep; expected at most 100 levels of nested containers"
    with pytest.raises(ValueError, match=rf"^params\[0\]\['x'\] {expected}$"):
        Experiment("deep", DEMO, [{"x": deep}], folder=tmp_path, progress=False)
    with pytest.raises(ValueError, match=rf"^grid\(\): parameter 'x' {expected}$"):
        grid(x=[deep])
    with pytest.raises(ValueError, match=rf"^params\[0\]\['x'\] {expected}$"):
        explicit([{"x": deep}])


def test_params_nested_at_the_limit_are_accepted(tmp_path: Path) -> None:
    assert grid(x=[nested(100)]).expand(0) == [{"x": nested(100)}]
    with pytest.raises(ValueError, match=r"is nested 101 levels deep; expected at most 100"):
        grid(x=[nested(101)])


@pytest.mark.parametrize("label", ["context", "scope"])
def test_deep_context_and_scope_values_name_their_key(tmp_path: Path, label: str) -> None:
    count("hostile inputs")
    with pytest.raises(
        ValueError,
        match=rf"^{label}\['c'\] is nested 5000 levels deep; expected at most 100 levels of "
        r"nested containers$",
    ):
        Experiment("deep", DEMO, folder=tmp_path, progress=False, **{label: {"c": nested(5000)}})
    assert not (tmp_path / "runs").exists()


def test_frozen_context_refuses_a_deep_value_naming_its_key() -> None:
    count("hostile inputs", 2)
    message = (
        r"^context key 'c': value is nested 5000 levels deep; expected at most 100 levels of "
        r"nested containers$"
    )
    with pytest.raises(ValueError, match=message):
        FrozenContext({"c": nested(5000)})
    context = FrozenContext({})
    with pytest.raises(ValueError, match=message):
        context.add("c", nested(5000))
    assert "c" not in context
    context.add("ok", nested(100))
    assert list(context) == ["ok"]


def test_frozen_context_still_copies_a_value_that_contains_itself() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    context = FrozenContext({"loop": loop})
    assert context["loop"][0] == 1
    assert context["loop"] is not loop


def test_canonical_encodings_refuse_deep_values_by_name() -> None:
    count("hostile inputs", 3)
    with pytest.raises(
        ValueError,
        match=r"^params\['x'\] is nested 5000 levels deep; expected at most 200 levels of "
        r"nested containers in all",
    ):
        canonical_bytes({"x": nested(5000)})
    with pytest.raises(ValueError, match=r"^params\['x'\] is nested 5000 levels deep"):
        SeedBundle(0, {"x": nested(5000)})
    with pytest.raises(
        ValueError,
        match=r"^cannot compute a cache uid for value\[0\]: it is nested more than 200 levels "
        r"deep; expected at most 200 levels of nested containers in all$",
    ):
        uid_of([nested(5000)])


# ---------------------------------------------------------------- names in bytes


def test_experiment_name_is_measured_in_bytes_of_the_file_system_encoding() -> None:
    count("hostile inputs")
    name = "実験" * 50  # 100 characters, 300 bytes in UTF-8
    size = len(os.fsencode(name))
    with pytest.raises(
        ValueError,
        match=rf"^name = '{name}' is {size} bytes in the file system encoding; the default "
        r"folder runs/<name> takes at most 255 bytes: pass a shorter name or folder=$",
    ):
        Experiment(name, DEMO, progress=False)
    assert Experiment("実験" * 40, DEMO, progress=False).folder.name == "実験" * 40  # 240 bytes


def test_long_artifact_names_are_refused_before_writing(tmp_path: Path) -> None:
    count("hostile inputs", 2)
    capture = Capture(artifact_dir=tmp_path)
    name = "é" * 125  # 250 bytes: the name fits a file name, its temporary name does not
    with pytest.raises(
        ValueError,
        match=rf"^artifact name '{name}' is 250 bytes in the file system encoding; expected at "
        r"most 240 bytes \(file names take 255 bytes, and writing one through a temporary name "
        r"adds up to 15\)$",
    ):
        capture.artifact(name, b"data")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"^artifact name 'a{250}' is 250 bytes"):
        ArtifactLog().add("a" * 250, b"data")
    capture.artifact("a" * 240, b"data")  # the longest name, with a 7-digit process id to spare
    assert (tmp_path / ("a" * 240)).read_bytes() == b"data"


def test_artifact_names_shaped_like_temporary_files_are_refused() -> None:
    count("hostile inputs")
    with pytest.raises(
        ValueError,
        match=r"^artifact name '\.model\.pkl\.123\.tmp' is not valid: it has the form of a "
        r"temporary file \('\.<name>\.<digits>\.tmp'\), which is removed when left over; ",
    ):
        ArtifactLog().add(".model.pkl.123.tmp", b"data")


# ---------------------------------------------------------------- seeds


def test_experiment_refuses_a_seed_outside_the_seed_sequence_range(tmp_path: Path) -> None:
    count("hostile inputs", 2)
    for seed in (2**200, 2**128, -1):
        with pytest.raises(
            ValueError, match=rf"^seed = {seed}; expected an int with 0 <= seed < 2\*\*128"
        ):
            Experiment("big", DEMO, seed=seed, folder=tmp_path, progress=False)
    largest = Experiment(
        "big", DEMO, grid(n_samples=[10]), seed=2**128 - 1, folder=tmp_path, progress=False
    )
    assert largest.run().counts() == {"success": 1}


def test_seed_bundle_names_the_range_as_a_power_of_two() -> None:
    with pytest.raises(
        ValueError, match=rf"^root_seed={2**200}: expected a non-negative int below 2\*\*128$"
    ):
        SeedBundle(2**200)


# ---------------------------------------------------------------- results output


@pytest.fixture
def odd_values(tmp_path: Path) -> Path:
    """An experiment folder whose params and metrics hold NaN, infinities and formula text."""
    params = [
        {"x": math.nan, "v": [math.nan, 1.0], "s": '=HYPERLINK("http://x")', "n": -3},
        {"x": math.inf, "v": [-math.inf], "s": "+1", "n": -0.5},
        {"x": 1.0, "v": [], "s": "-2", "n": 0},
        {"x": 2.0, "v": [], "s": "@SUM(A1)", "n": 1},
        {"x": 3.0, "v": [], "s": "\tx", "n": 2},
        {"x": 4.0, "v": [], "s": "\rx", "n": 3},
        {"x": 5.0, "v": [], "s": "plain", "n": 4},
    ]
    specs = [RunSpec.of(p, 0) for p in params]
    metrics = [{"loss": math.nan, "gain": -math.inf}, {"loss": math.inf, "gain": -1.0}]
    with ResultsIndex(tmp_path) as index:
        index.plan(specs)
        index.store(
            Outcome(
                s.run_id, "success", metrics[i] if i < 2 else {"loss": 0.5}, 0.1, None, "h", None
            )
            for i, s in enumerate(specs)
        )
    return tmp_path


def test_results_json_is_strict_and_spells_out_non_finite_numbers(
    odd_values: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", str(odd_values), "--json"]) == 0
    text = capsys.readouterr().out

    def refuse(constant: str) -> Any:
        raise AssertionError(f"bare {constant} in the JSON output")

    rows = json.loads(text, parse_constant=refuse)
    first, second = rows[0], rows[1]
    assert (first["x"], first["v"], first["loss"], first["gain"]) == (
        "NaN",
        ["NaN", 1.0],
        "NaN",
        "-Infinity",
    )
    assert (second["x"], second["v"], second["loss"]) == ("Infinity", ["-Infinity"], "Infinity")
    assert first["n"] == -3
    assert first["s"] == '=HYPERLINK("http://x")'


def test_results_csv_neutralises_formulas_but_not_numbers(
    odd_values: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count("hostile inputs", 6)
    assert main(["results", str(odd_values), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["s"] for row in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "plain",
    ]
    assert [row["n"] for row in rows] == ["-3", "-0.5", "0", "1", "2", "3", "4"]
    assert (rows[0]["x"], rows[0]["v"], rows[0]["loss"], rows[0]["gain"]) == (
        "NaN",
        '["NaN", 1.0]',
        "NaN",
        "-Infinity",
    )
    assert (rows[1]["x"], rows[1]["v"], rows[1]["gain"]) == ("Infinity", '["-Infinity"]', "-1.0")


# ---------------------------------------------------------------- leftover temporary files


def _plant(folder: Path, name: str, age: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"half-written")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_old_temporary_artifact_files_are_removed_when_the_folder_is_next_written(
    tmp_path: Path,
) -> None:
    count("kills survived")
    old = _plant(tmp_path, ".model.pkl.4242.tmp", age=2 * 3600)
    young = _plant(tmp_path, ".model.pkl.4243.tmp", age=60)  # a writer may still be at work
    other = _plant(tmp_path, ".notes.tmp", age=2 * 3600)  # not a temporary name of a writer
    Capture(artifact_dir=tmp_path).artifact("summary.txt", "done")
    assert not old.exists()
    assert young.exists()
    assert other.exists()
    assert (tmp_path / "summary.txt").read_text() == "done"


@operation
def _writes_nothing(capture: Capture) -> None:
    capture.metric("ran", 1)


def test_old_temporary_artifact_files_are_removed_when_the_run_is_rerun(tmp_path: Path) -> None:
    count("kills survived")
    old = _plant(tmp_path / "artifacts", ".weights.npy.77.tmp", age=2 * 3600)
    record = _writes_nothing.run(runtime=Runtime(tmp_path))
    assert record.status == "success"
    assert not old.exists()
