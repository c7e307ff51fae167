"""Numpy masked arrays in params, metrics and artifacts: the mask is never silently dropped."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assay_ops import Capture, RunRecord, Runtime, SeedBundle, canonical_digest, operation


def _masked(mask: list[bool]) -> Any:
    return np.ma.masked_array([1.0, 2.0, 3.0], mask=mask)


def test_a_masked_param_is_refused_naming_where_it_sits() -> None:
    params = {"model": {"sst": _masked([False, True, False])}}
    with pytest.raises(TypeError, match=r"params\['model'\]\['sst'\].*masked"):
        canonical_digest(params)
    with pytest.raises(TypeError, match=r"params\['model'\]\['sst'\]"):
        SeedBundle(0, params)


def test_arrays_differing_in_data_still_differ() -> None:
    # The refusal must not hide differences the encoding already tells apart.
    assert canonical_digest({"a": np.array([1.0, 2.0])}) != canonical_digest(
        {"a": np.array([1.0, 5.0])}
    )


def test_a_masked_artifact_file_reads_back_with_its_mask(tmp_path: Path) -> None:
    capture = Capture(artifact_dir=tmp_path)
    description = capture.artifact("sst.pkl", _masked([False, True, False]))
    assert description["format"] == "pickle"
    with open(description["path"], "rb") as file:
        loaded = pickle.load(file)
    assert np.ma.getmaskarray(loaded).tolist() == [False, True, False]
    assert loaded.compressed().tolist() == [1.0, 3.0]


@operation
def _mean_of_nothing(capture: Capture) -> None:
    sst = np.ma.masked_array([20.5, 21.0], mask=[True, True])  # every value is invalid
    capture.metric("sst.mean", sst.mean())  # numpy returns np.ma.masked, not a number


def test_a_fully_masked_metric_fails_the_run_instead_of_saving_a_number(tmp_path: Path) -> None:
    record = _mean_of_nothing.run(runtime=Runtime(tmp_path / "run"))
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == "builtins.TypeError"
    assert "sst.mean" in record.error.message
    assert "filled(np.nan)" in record.error.message
    record.save(tmp_path / "run")
    assert RunRecord.load(tmp_path / "run").metrics == {}


def test_a_masked_array_filled_with_nan_is_recorded_and_saved(tmp_path: Path) -> None:
    @operation
    def filled(capture: Capture) -> None:
        capture.metric("sst", _masked([False, True, False]).filled(np.nan))

    record = filled.run()
    record.save(tmp_path)
    saved = RunRecord.load(tmp_path).metric("sst")
    assert np.isnan(saved[1])
    assert saved[[0, 2]].tolist() == [1.0, 3.0]
