"""The identity of an experiment folder: which context and scope values make it another one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from assay import Experiment, grid
from assay._identity import FolderConflictError

OPERATION = "assay._demo:estimate_pi"


@dataclass(frozen=True)
class Config:
    """A value the cache cannot key: neither data nor a pydantic model."""

    width: int = 3


def _run(folder: Path, **kwargs: object) -> Experiment:
    experiment = Experiment(
        "pi", OPERATION, grid(n_samples=[10]), folder=folder, progress=False, **kwargs
    )
    experiment.run()
    return experiment


@pytest.mark.parametrize("label", ["context", "scope"])
def test_equal_sets_are_the_same_experiment_whatever_their_order(
    tmp_path: Path, label: str
) -> None:
    # {1, 9} and {9, 1} are equal, but their repr differs (both hash to the same slot of a
    # small table); between processes, sets of strings change order with the hash seed
    first, second = {1, 9}, {9, 1}
    assert first == second
    assert repr(first) != repr(second)
    _run(tmp_path, **{label: {"tags": first}})
    again = _run(tmp_path, **{label: {"tags": second}})
    assert again.last_summary is not None
    assert again.last_summary.skipped == 1


def test_another_large_array_in_the_context_is_another_experiment(tmp_path: Path) -> None:
    weights = np.zeros(5_000)
    _run(tmp_path, context={"weights": weights})
    changed = weights.copy()
    changed[2_500] = 1.0  # repr() abbreviates the middle of large arrays: it looks the same
    assert repr(changed) == repr(weights)
    with pytest.raises(FolderConflictError, match="context"):
        _run(tmp_path, context={"weights": changed})


@pytest.mark.parametrize("label", ["context", "scope"])
def test_a_value_the_cache_cannot_key_is_refused_before_the_folder_is_made(
    tmp_path: Path, label: str
) -> None:
    folder = tmp_path / "exp"
    with pytest.raises(TypeError, match=rf"{label}\['model'\] = Config\(width=3\)"):
        Experiment(
            "pi", OPERATION, grid(n_samples=[10]), folder=folder, **{label: {"model": Config()}}
        )
    assert not folder.exists()
    # the same folder still takes the experiment with a value that can be keyed
    _run(folder, **{label: {"model": {"width": 3}}})
