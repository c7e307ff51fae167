"""Each kind of identity has one encoder, and the layers above quote it rather than copy it.

Run ids, seeds and duplicate parameters use the params encoding of assay-ops; cache uids and an
experiment folder's identity use the cache-uid encoding of assay-steps. What a user reads about
either (the types it takes) comes from the layer that owns it, so the messages agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from assay_ops import canonical_digest
from assay_steps import UID_TYPES
from assay_steps._uid import uid_of

from assay import Experiment, grid
from assay._canonical import run_id

OPERATION = "assay._demo:estimate_pi"


class Opaque:
    """Neither data nor a pydantic model: no encoding keys it."""

    def __repr__(self) -> str:
        return "Opaque()"


@pytest.mark.parametrize("label", ["context", "scope"])
def test_the_experiment_names_the_types_the_cache_uid_takes(tmp_path: Path, label: str) -> None:
    given: dict[str, Any] = {label: {"m": Opaque()}}
    with pytest.raises(TypeError) as refused:
        Experiment("pi", OPERATION, grid(n_samples=[10]), folder=tmp_path / "e", **given)
    message = str(refused.value)
    assert message.startswith(f"{label}['m'] = Opaque() is a Opaque")
    assert message.endswith(f"expected data the experiment can hash into its identity: {UID_TYPES}")
    # the same list as the cache's own refusal of the value
    with pytest.raises(TypeError) as cache:
        uid_of(Opaque())
    assert str(cache.value).endswith(f"expected {UID_TYPES} (or override item_uid)")


def test_a_run_id_is_the_params_digest_of_the_run() -> None:
    # the run id is cut from the digest seeds are derived from, not from an encoding of its own
    digest = canonical_digest({"params": {"lr": 0.1, "opt": "adam"}, "replicate": 3})
    assert run_id({"lr": 0.1, "opt": "adam"}, 3) == digest[:20]
