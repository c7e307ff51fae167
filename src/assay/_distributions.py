"""Distributions of the parameters of a random search: uniform, loguniform, randint, choice.

Each checks its arguments before anything runs (``validate``, with errors naming the
parameter) and draws from a ``numpy.random.Generator`` (``sample``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._canonical import normalise


class Distribution:
    """A distribution of one parameter of a random search."""

    def validate(self, name: str) -> None:
        """Raise ValueError naming parameter ``name`` if the arguments are invalid."""
        raise NotImplementedError

    def sample(self, rng: Any, n: int) -> list[Any]:
        """Return ``n`` draws from ``rng`` (a ``numpy.random.Generator``)."""
        raise NotImplementedError


def _number(name: str, label: str, value: Any, dist: Distribution) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"random(): parameter {name!r}: {dist!r}: {label} must be a finite number")
    return float(value)


@dataclass(frozen=True)
class uniform(Distribution):  # lower case: read as functions beside grid and random
    """Floats drawn uniformly from ``[low, high)``.

    Examples:
        >>> uniform(0.0, 1.0)
        uniform(low=0.0, high=1.0)

    """

    low: float
    high: float

    def validate(self, name: str) -> None:
        """Check that ``low < high``, both finite."""
        low = _number(name, "low", self.low, self)
        high = _number(name, "high", self.high, self)
        if not low < high:
            raise ValueError(f"random(): parameter {name!r}: {self!r} needs low < high")

    def sample(self, rng: Any, n: int) -> list[Any]:
        """Draw ``n`` floats."""
        return [float(x) for x in rng.uniform(self.low, self.high, n)]


@dataclass(frozen=True)
class loguniform(Distribution):
    """Floats whose logarithm is uniform on ``[log(low), log(high))``: learning rates and the like.

    Examples:
        >>> loguniform(1e-4, 1e-1)
        loguniform(low=0.0001, high=0.1)

    """

    low: float
    high: float

    def validate(self, name: str) -> None:
        """Check that ``0 < low < high``."""
        low = _number(name, "low", self.low, self)
        high = _number(name, "high", self.high, self)
        if not 0 < low < high:
            raise ValueError(f"random(): parameter {name!r}: {self!r} needs 0 < low < high")

    def sample(self, rng: Any, n: int) -> list[Any]:
        """Draw ``n`` floats."""
        logs = rng.uniform(math.log(self.low), math.log(self.high), n)
        # exp(log(high)) can round up to high itself; keep the interval half-open
        return [min(math.exp(x), math.nextafter(self.high, 0.0)) for x in logs]


@dataclass(frozen=True)
class randint(Distribution):
    """Integers drawn uniformly from ``low`` (inclusive) to ``high`` (exclusive), as numpy does.

    Examples:
        >>> randint(1, 10)
        randint(low=1, high=10)

    """

    low: int
    high: int

    def validate(self, name: str) -> None:
        """Check that both are ints numpy can draw between (64-bit) and ``low < high``."""
        for label, value in (("low", self.low), ("high", self.high)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"random(): parameter {name!r}: {self!r}: {label} must be an int")
        # numpy draws int64: caught here, before anything runs, not at expand() in a sweep
        if self.low < -(2**63):
            raise ValueError(f"random(): parameter {name!r}: {self!r}: low must be at least -2**63")
        if self.high > 2**63:
            raise ValueError(f"random(): parameter {name!r}: {self!r}: high must be at most 2**63")
        if not self.low < self.high:
            raise ValueError(f"random(): parameter {name!r}: {self!r} needs low < high")

    def sample(self, rng: Any, n: int) -> list[Any]:
        """Draw ``n`` ints."""
        return [int(x) for x in rng.integers(self.low, self.high, n)]


class choice(Distribution):
    """One of the given options, each equally likely.

    Examples:
        >>> choice(["adam", "sgd"])
        choice(['adam', 'sgd'])

    """

    def __init__(self, options: Sequence[Any]) -> None:
        self.options = options

    def __repr__(self) -> str:
        return f"choice({self.options!r})"

    def validate(self, name: str) -> None:
        """Check that there is at least one option and every option is JSON-like data."""
        if isinstance(self.options, (str, bytes, Mapping)) or not isinstance(
            self.options, Sequence
        ):
            raise ValueError(f"random(): parameter {name!r}: {self!r} needs a list of options")
        if not self.options:
            raise ValueError(f"random(): parameter {name!r}: {self!r} has no options")
        for option in self.options:
            normalise(option, f"random(): parameter {name!r}")

    def sample(self, rng: Any, n: int) -> list[Any]:
        """Draw ``n`` options."""
        picks = rng.integers(0, len(self.options), n)
        return [normalise(self.options[int(i)], "choice") for i in picks]


def checked(distributions: Mapping[str, Any], where: str) -> tuple[tuple[str, Distribution], ...]:
    """Return the distributions of a space by name, checked; a plain value becomes fixed.

    ``where`` names the space in errors (``"random()"``, ``"search()"``).

    Examples:
        >>> checked({"lr": loguniform(1e-4, 1e-1), "layers": 2}, "random()")
        (('lr', loguniform(low=0.0001, high=0.1)), ('layers', choice([2])))

    """
    dists = []
    for name, dist in distributions.items():
        if not isinstance(dist, Distribution):
            dist = choice([normalise(dist, f"{where}: parameter {name!r}")])
        dist.validate(name)
        dists.append((name, dist))
    return tuple(dists)
