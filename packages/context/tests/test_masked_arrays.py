"""Numpy masked arrays: their mask is part of the value, in the context, metrics and artifacts.

A masked array carries a second, separate array (the mask) and a fill value next to its data.
Freezing the data alone leaves the mask writable, and writers that save plain arrays (``.npy``,
the run record's JSON) keep the data alone, so masked-out (invalid) values would come back as
real ones.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import pytest
from assay_context import ArtifactLog, FrozenContext, FrozenMetrics, freeze

np = pytest.importorskip("numpy")


def _masked() -> Any:
    return np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0)


def test_a_reader_cannot_unmask_a_stored_masked_array() -> None:
    ctx = FrozenContext({"sst": _masked()})
    first = ctx["sst"]
    # What a reader might do to "fix" a value for its own use; refused outright is as good
    # as a private copy.
    with contextlib.suppress(ValueError):
        first.mask[1] = False
    with contextlib.suppress(AttributeError, ValueError):
        first.fill_value = 0.0
    again = ctx["sst"]
    assert np.ma.getmaskarray(again).tolist() == [False, True, False]
    assert again.fill_value == -1.0
    assert again.filled().tolist() == [1.0, -1.0, 3.0]


def test_the_callers_mask_does_not_reach_the_stored_value() -> None:
    value = _masked()
    ctx = FrozenContext({"sst": value})
    value.mask[0] = True
    assert np.ma.getmaskarray(ctx["sst"]).tolist() == [False, True, False]


def test_a_stored_masked_array_survives_pickling_with_its_mask() -> None:
    ctx = pickle.loads(pickle.dumps(FrozenContext({"sst": _masked()})))
    assert np.ma.getmaskarray(ctx["sst"]).tolist() == [False, True, False]


def test_freeze_refuses_a_masked_array_whose_mask_it_cannot_lock() -> None:
    with pytest.raises(TypeError, match="MaskedArray"):
        freeze({"sst": _masked()})


@pytest.mark.parametrize(
    "value",
    [_masked(), np.ma.masked_array([1.0], mask=[True]).mean()],
    ids=["masked array", "fully masked mean"],
)
def test_a_masked_metric_value_is_refused_naming_metric_and_remedy(value: Any) -> None:
    metrics = FrozenMetrics()
    with pytest.raises(TypeError, match=r"(?s)metric 'sst'.*masked array.*filled\(np\.nan\)"):
        metrics.add("sst", value)
    assert "sst" not in metrics.as_dict()


def test_an_unmasked_reduction_of_a_masked_array_is_an_ordinary_metric() -> None:
    metrics = FrozenMetrics()
    metrics.add("sst", _masked().mean())
    assert metrics["sst"] == (2.0,)


def test_a_masked_artifact_keeps_its_mask() -> None:
    log = ArtifactLog()
    value = _masked()
    log.add("sst.pkl", value)
    record = log["sst.pkl"]
    # .npy cannot hold a mask: the artifact is kept (and written) as a pickled object.
    assert record.kind == "object"
    assert np.ma.getmaskarray(record.data).tolist() == [False, True, False]
    assert record.data.filled().tolist() == [1.0, -1.0, 3.0]
    value.mask[0] = True
    assert np.ma.getmaskarray(log["sst.pkl"].data).tolist() == [False, True, False]
