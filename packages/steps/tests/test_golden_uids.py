"""Golden values: uids change only when the encoding is bumped on purpose.

Each value below is a uid as written on disk by this encoding. A test failing here means
every user's cache would be silently orphaned: bump ``ENCODING`` instead (and the old-cache
message tells users), then update these values.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from assay_steps import Cached, Chain, Step
from assay_steps._uid import ENCODING, class_name, uid_of


class GoldenScale(Step):
    __assay_name__ = "golden.Scale"
    factor: float = 2.0

    def _run(self, value: float) -> float:
        return value * self.factor


class GoldenShift(Step):
    __assay_name__ = "golden.Shift"
    offset: int = 0

    def _run(self, value: float) -> float:
        return value + self.offset


def test_the_encoding_version() -> None:
    assert ENCODING == 3


@pytest.mark.parametrize(
    ("value", "uid"),
    [
        (1, "8d69af63441060c491c56b8cf98b8afc"),
        (1.0, "83112fbd66faade79a2b5d0db61af80c"),
        (True, "f886a03abce0548d65c712e49ac4d28c"),
        ("a", "4660174feddaa49274b7ab7cb196f889"),
        ((1, "a"), "f15365be985aa889dff229d96e940176"),
        ([1, "a"], "dca6ecb0d116fa2a77af751ee136860a"),
        ({"x": [1, 2], "y": None}, "61ac52cfab19fade820148b6d1be85a0"),
        (np.arange(3, dtype=np.int64), "96763e7779b06c5d41f7f4cca3ae1456"),
    ],
    ids=repr,
)
def test_item_uids_are_pinned(value: object, uid: str) -> None:
    assert uid_of(value) == uid


def test_step_uids_are_pinned(tmp_path: object) -> None:
    scale = GoldenScale(factor=3.0, infra=Cached(folder=tmp_path))  # type: ignore[arg-type]
    assert scale.lookup(1.0).paths.step_uid == "GoldenScale-9e503f9d4c56b95f10483bc5d9c1e834"
    steps = [GoldenShift(offset=1), GoldenScale()]
    chain = Chain(steps=steps, infra=Cached(folder=tmp_path))  # type: ignore[arg-type]
    assert chain.lookup(1.0).paths.step_uid == "GoldenScale-1ea25e734c78a706193c23c2f97d10c3"


def test_no_private_module_path_names_a_class() -> None:
    assert class_name(Chain) == "assay_steps.Chain"
    assert class_name(GoldenScale) == "golden.Scale"


def test_moving_a_class_between_private_modules_keeps_its_name() -> None:
    package = types.ModuleType("golden_pkg")
    sys.modules["golden_pkg"] = package
    try:
        names = []
        for private in ("_old_home", "_new_home"):
            module = types.ModuleType(f"golden_pkg.{private}")
            sys.modules[module.__name__] = module
            cls = type("Thing", (), {"__module__": module.__name__})
            package.Thing = cls  # type: ignore[attr-defined]
            names.append(class_name(cls))
            del sys.modules[module.__name__]
        assert names == ["golden_pkg.Thing", "golden_pkg.Thing"]
        unexported = type("Hidden", (), {"__module__": "golden_pkg._impl"})
        assert class_name(unexported) == "golden_pkg.Hidden"
    finally:
        del sys.modules["golden_pkg"]
