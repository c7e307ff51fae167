"""Steps shared by the tests (importable, so that other processes can unpickle them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from assay_steps import Step


def cached(folder: Path, **fields: Any) -> dict[str, Any]:
    """The ``infra=`` dict of a ``Cached`` backend on ``folder``, with the fields given."""
    return {"backend": "Cached", "folder": folder, **fields}


def infra(folder: Path, mode: str = "cached", **fields: Any) -> dict[str, Any]:
    """The same, its ``mode`` always set: ``infra(folder, "read-only")``."""
    return cached(folder, mode=mode, **fields)


class Mult(Step):
    """Multiply the input by coeff; counts its calls (per class, reset by the fixture)."""

    coeff: float = 2.0
    calls: int = 0  # excluded from the uid below: bookkeeping only

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["calls"]

    def _run(self, value: float) -> float:
        CALLS.append(("Mult", value))
        return value * self.coeff


class Add(Step):
    x: float = 1.0

    def _run(self, value: float) -> float:
        CALLS.append(("Add", value))
        return value + self.x


class Source(Step):
    n: int = 3

    def _run(self) -> list[int]:
        CALLS.append(("Source", None))
        return list(range(self.n))


class Fail(Step):
    message: str = "boom"

    def _run(self, value: Any) -> Any:
        CALLS.append(("Fail", value))
        if value < 0:
            raise ValueError(f"{self.message} {value}")
        return value


class Batched(Step):
    extra: int = 0  # yield this many results too many (negative: too few)

    def _run_batch(self, values: Iterable[Any]) -> Iterator[Any]:
        values = list(values)
        CALLS.append(("Batched", len(values)))
        out = [v * 10 for v in values]
        if self.extra > 0:
            out += [0] * self.extra
        elif self.extra < 0:
            out = out[: self.extra]
        yield from out


CALLS: list[tuple[str, Any]] = []


def calls(name: str) -> list[Any]:
    return [v for n, v in CALLS if n == name]


class Slow(Step):
    """Sleep a little, then log which process computed the item into ``log_folder``."""

    log_folder: str = ""
    delay: float = 0.002

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["log_folder"]

    def _run(self, value: int) -> int:
        import os
        import time

        time.sleep(self.delay)
        with open(os.path.join(self.log_folder, f"{os.getpid()}.log"), "a") as log:
            log.write(f"{value}\n")
        return value * value


class FailOnce(Step):
    """Fail the first time an item is computed, succeed afterwards (a marker file remembers)."""

    marker_folder: str = ""

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["marker_folder"]

    def _run(self, value: int) -> int:
        import os

        marker = os.path.join(self.marker_folder, f"{value}.failed")
        CALLS.append(("FailOnce", value))
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError(f"first attempt at {value}")
        return value


class Stamped(Step):
    """Returns the input with the process that computed it and when (each result is new)."""

    def _run(self, value: int) -> tuple[int, int, int]:
        import os
        import time

        CALLS.append(("Stamped", value))
        return value, os.getpid(), time.time_ns()


class Logged(Step):
    """Squares the input; appends ``<pid> <input>`` to ``log`` (O_APPEND) for each computation."""

    log: str = ""

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        return ["log"]

    def _run(self, value: int) -> int:
        import os

        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {value}\n".encode())
        finally:
            os.close(fd)
        return value * value


class Ramp(Step):
    """Returns ``arange(value)``: a large input gives an array stored in a file of its own."""

    def _run(self, value: int) -> np.ndarray:
        return np.arange(value, dtype=np.float64)
