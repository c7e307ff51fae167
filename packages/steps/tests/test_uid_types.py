"""One encoder for cache uids: the types it names are the types it keys, step uids included."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pydantic
import pytest
from assay_steps import UID_TYPES, Cached, Step
from assay_steps._uid import uid_of


class Color(enum.Enum):
    RED = 1


class Config(pydantic.BaseModel):
    width: int = 3


class UidScale(Step):
    factor: float = 2.0

    def _run(self, value: float) -> float:
        return value * self.factor


# A value of every type UID_TYPES names, by the name it gives the type.
NAMED = {
    "None": None,
    "bool": True,
    "int": 1,
    "float": 1.5,
    "complex": 1j,
    "str": "a",
    "bytes": b"a",
    "tuple": (1,),
    "list": [1],
    "dict": {"a": 1},
    "set": {1},
    "frozenset": frozenset({1}),
    "Path": PurePosixPath("a/b"),
    "Enum": Color.RED,
    "date": datetime.date(2024, 1, 2),
    "time": datetime.time(3, 4),
    "timedelta": datetime.timedelta(seconds=5),
    "Decimal": decimal.Decimal("0.10"),
    "UUID": uuid.UUID(int=7),
    "numpy array": np.arange(3),
    "scalar": np.float32(0.5),
    "pydantic model": Config(),
}


@pytest.mark.parametrize("name", list(NAMED))
def test_every_type_the_list_names_has_a_uid(name: str) -> None:
    assert name in UID_TYPES
    assert len(uid_of(NAMED[name])) == 32


@pytest.mark.parametrize("bad", [object(), {"a": [object()]}, print])
def test_a_value_of_another_type_is_refused_with_the_list(bad: Any) -> None:
    with pytest.raises(TypeError) as raised:
        uid_of(bad)
    assert str(raised.value).endswith(f"; expected {UID_TYPES} (or override item_uid)")


def test_a_steps_uid_is_the_uid_of_its_configuration(folder: Any) -> None:
    # The cache folder of a step is named by the same encoder and hash as its inputs: a
    # second encoder for configurations could drift from the one the golden values pin.
    step = UidScale(factor=3.0, infra=Cached(folder=folder))
    assert step.lookup(1.0).paths.step_uid == f"UidScale-{uid_of((step,))}"
