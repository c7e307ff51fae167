"""Parameter spaces: cartesian grids, seeded random search and explicit lists.

A space expands to an ordered list of parameter dicts. Everything is validated when the space
is built (or, for random search, before anything runs), with errors naming the parameter.
The distributions of a random search are in ``_distributions``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from assay_ops import canonical_bytes

from ._canonical import normalise
from ._distributions import Distribution, checked

Params = dict[str, Any]


class ParamSpace:
    """An ordered collection of parameter dicts to run an operation over.

    Built by [`grid`][assay.grid], [`random`][assay.random] or [`explicit`][assay.explicit];
    ``Experiment`` also accepts a plain list of dicts. ``expand(seed)`` returns the dicts; random
    search draws them from ``seed`` so that the same root seed always gives the same sweep.
    """

    def expand(self, seed: int) -> list[Params]:
        """Return the parameter dicts of this space, in order.

        Args:
            seed: the experiment's root seed (used by random search only).

        """
        raise NotImplementedError

    def points(self, seed: int) -> Sequence[Params]:
        """Return the parameter dicts of ``expand(seed)``, possibly made on demand.

        A sweep plans its runs from this sequence: a grid's points are computed when indexed
        or iterated, so a grid of a million points is not held in memory as a million dicts.
        """
        return self.expand(seed)

    def __add__(self, other: ParamSpace) -> ParamSpace:
        """Concatenate two spaces: ``grid(a=[1, 2]) + grid(a=[10], b=[0])``."""
        if not isinstance(other, ParamSpace):
            return NotImplemented
        return _Concat((self, other))


@dataclass(frozen=True)
class _Concat(ParamSpace):
    parts: tuple[ParamSpace, ...]

    def expand(self, seed: int) -> list[Params]:
        return _unique([p for part in self.parts for p in part.expand(seed)], "space")


@dataclass(frozen=True)
class _Grid(ParamSpace):
    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    def expand(self, seed: int) -> list[Params]:
        return list(self.points(seed))

    def points(self, seed: int) -> Sequence[Params]:
        return _GridPoints(self.axes)

    def __len__(self) -> int:
        return math.prod(len(vals) for _, vals in self.axes)


class _GridPoints(Sequence[Params]):
    """The points of a grid, each dict made when asked for (last axis fastest)."""

    def __init__(self, axes: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
        self._names = [name for name, _ in axes]
        self._values = [values for _, values in axes]
        self._length = math.prod(len(values) for values in self._values)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Params: ...

    @overload
    def __getitem__(self, index: slice) -> list[Params]: ...

    def __getitem__(self, index: int | slice) -> Params | list[Params]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        rest = index + self._length if index < 0 else index
        if not 0 <= rest < self._length:
            raise IndexError(f"grid point {index} out of range for a grid of {self._length}")
        combo: list[Any] = []
        for values in reversed(self._values):  # mixed radix: the last axis varies fastest
            rest, digit = divmod(rest, len(values))
            combo.append(values[digit])
        return dict(zip(self._names, reversed(combo), strict=True))

    def __iter__(self) -> Iterator[Params]:
        for combo in itertools.product(*self._values):
            yield dict(zip(self._names, combo, strict=True))


@dataclass(frozen=True)
class _Explicit(ParamSpace):
    items: tuple[Params, ...]

    def expand(self, seed: int) -> list[Params]:
        return [dict(p) for p in self.items]

    def points(self, seed: int) -> Sequence[Params]:
        return _Copies(self.items)

    def __len__(self) -> int:
        return len(self.items)


class _Copies(Sequence[Params]):
    """The dicts of an explicit space, each copied when asked for: the space keeps its own."""

    def __init__(self, items: tuple[Params, ...]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Params: ...

    @overload
    def __getitem__(self, index: slice) -> list[Params]: ...

    def __getitem__(self, index: int | slice) -> Params | list[Params]:
        if isinstance(index, slice):
            return [dict(p) for p in self._items[index]]
        return dict(self._items[index])

    def __iter__(self) -> Iterator[Params]:
        return (dict(p) for p in self._items)


def grid(**values: Iterable[Any]) -> ParamSpace:
    """Return the cartesian product of the given value lists, in order (last key fastest).

    Args:
        **values: for each parameter, a non-empty list (or other iterable, not a string) of
            distinct values.

    Raises:
        TypeError: a parameter's values are not a list, or a value is not JSON-like data.
        ValueError: a parameter has no values or a repeated value.

    Examples:
        >>> for params in grid(n=[10, 100], method=["a", "b"]).expand(0):
        ...     print(params)
        {'n': 10, 'method': 'a'}
        {'n': 10, 'method': 'b'}
        {'n': 100, 'method': 'a'}
        {'n': 100, 'method': 'b'}

    """
    axes = []
    for name, vals in values.items():
        if isinstance(vals, (str, bytes, Mapping)) or not isinstance(vals, Iterable):
            raise TypeError(
                f"grid(): parameter {name!r} = {vals!r}; expected a list of values, "
                f"e.g. {name}=[{vals!r}]"
            )
        items = [normalise(v, f"grid(): parameter {name!r}") for v in vals]
        if not items:
            raise ValueError(f"grid(): parameter {name!r} has no values; expected at least one")
        _unique([{name: v} for v in items], f"grid(): parameter {name!r}")
        axes.append((name, tuple(items)))
    return _Grid(tuple(axes))


def explicit(items: Iterable[Mapping[str, Any]]) -> ParamSpace:
    """Return a space made of the given parameter dicts, in order.

    Raises:
        TypeError: an item is not a dict with string keys, or holds a non JSON-like value.
        ValueError: two items are equal (they would be the same runs).

    Examples:
        >>> explicit([{"lr": 0.1}, {"lr": 0.01, "wd": 0.0}]).expand(0)
        [{'lr': 0.1}, {'lr': 0.01, 'wd': 0.0}]

    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise TypeError(f"params = {items!r}; expected a list of dicts")
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"params[{i}] = {item!r} is a {type(item).__name__}; expected a dict")
        params: Params = {}
        for key, value in item.items():  # each value may nest MAX_NESTING levels
            if not isinstance(key, str):
                raise TypeError(
                    f"params[{i}]: dict key {key!r} is a {type(key).__name__}, expected str"
                )
            params[key] = normalise(value, f"params[{i}][{key!r}]")
        checked.append(params)
    return _Explicit(tuple(_unique(checked, "params")))


def as_space(params: ParamSpace | Iterable[Mapping[str, Any]] | None) -> ParamSpace:
    """Return ``params`` as a space: spaces pass through, lists of dicts become explicit ones.

    ``None`` means a single run with no parameters.
    """
    if params is None:
        return _Explicit(({},))
    if isinstance(params, ParamSpace):
        return params
    return explicit(params)


def _unique(items: list[Params], where: str) -> list[Params]:
    seen: dict[bytes, int] = {}
    for i, item in enumerate(items):
        key = canonical_bytes(item)
        if key in seen:
            raise ValueError(
                f"{where}: {item!r} appears twice (positions {seen[key]} and {i}); "
                "each parameter combination must be unique"
            )
        seen[key] = i
    return items


# ---------------------------------------------------------------- random search


@dataclass(frozen=True)
class _Random(ParamSpace):
    n: int
    seed: int | None
    dists: tuple[tuple[str, Distribution], ...]

    def expand(self, seed: int) -> list[Params]:
        import numpy as np  # only random search needs numpy; keep `import assay` light

        root = self.seed if self.seed is not None else seed
        # a stream of its own, so the draws never overlap the runs' seed streams
        rng = np.random.default_rng(np.random.SeedSequence([root, 0x7A4D]))
        columns = {name: dist.sample(rng, self.n) for name, dist in self.dists}
        drawn = [{name: columns[name][i] for name, _ in self.dists} for i in range(self.n)]
        # discrete spaces can draw a combination twice: it is one run, not two
        unique: dict[bytes, Params] = {}
        for params in drawn:
            unique.setdefault(canonical_bytes(params), params)
        return list(unique.values())

    def __len__(self) -> int:
        return self.n


def random(n: int, *, seed: int | None = None, **distributions: Distribution | Any) -> ParamSpace:
    """Return up to ``n`` parameter dicts drawn from the given distributions.

    The draws come from ``numpy.random.SeedSequence`` over the experiment's root seed (or
    ``seed`` when given), so the same root seed always gives the same sweep on any machine.
    A parameter given as a plain value (not a distribution) is held fixed. A combination drawn
    twice (possible when every parameter is discrete) is one run, so the space may hold fewer
    than ``n`` dicts; use ``replicates`` for repeated runs.

    Args:
        n: number of parameter dicts, at least 1.
        seed: overrides the experiment's root seed for the draws.
        **distributions: [`uniform`][assay.uniform], [`loguniform`][assay.loguniform],
            [`randint`][assay.randint], [`choice`][assay.choice], or a fixed JSON-like value.

    Raises:
        ValueError: ``n`` is not a positive int, or a distribution is invalid (the message
            names the parameter).

    Examples:
        >>> from assay import choice, loguniform
        >>> space = random(3, lr=loguniform(1e-4, 1e-1), opt=choice(["adam", "sgd"]))
        >>> space.expand(0) == space.expand(0), len(space.expand(0))
        (True, 3)

    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"random(): n = {n!r}; expected a positive int")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"random(): seed = {seed!r}; expected a non-negative int")
    return _Random(n, seed, checked(distributions, "random()"))
