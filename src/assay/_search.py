"""Adaptive search: a parameter space whose points a sampler proposes while the sweep runs.

``search(...)`` returns a ``Search``: like ``random`` it takes distributions, but its points
are not known before the experiment runs. The experiment's driver asks a sampler (Optuna's)
for trials, runs each as a normal run and tells the sampler its metric (``_search_run``); the
study lives in the experiment folder (``_study``). This module only describes the search and
checks it, so that building one needs no Optuna.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from assay_ops import canonical_digest

from ._distributions import Distribution, checked
from ._space import Params, ParamSpace

Direction = Literal["minimize", "maximize"]

#: The samplers ``search`` knows by name (each seeded from the experiment's root seed).
SAMPLERS = ("tpe", "random", "cmaes", "qmc")
#: The pruners ``search`` knows by name (Optuna's median rule, successive halving, Hyperband).
PRUNERS = ("median", "halving", "hyperband")


@dataclass(frozen=True)
class Search(ParamSpace):
    """The description of an adaptive search (see [`search`][assay.search]).

    Attributes:
        n: trials to run in all (finished trials: complete, pruned or failed).
        metric: the metric each run records whose last value the sampler is told.
        direction: ``"minimize"`` or ``"maximize"``.
        sampler: a name of ``SAMPLERS``.
        pruner: a name of ``PRUNERS``, an ``optuna.pruners.BasePruner``, or None.
        parallel: trials asked for and run at once (None: what the backend runs at once).
        seed: the sampler's seed (None: the experiment's root seed).
        dists: the searched parameters, and the fixed ones (as single-option choices).

    """

    n: int
    metric: str
    direction: Direction
    sampler: str
    pruner: Any
    parallel: int | None
    seed: int | None
    dists: tuple[tuple[str, Distribution], ...]

    def expand(self, seed: int) -> list[Params]:
        """Refuse: a search's points come from its sampler while the experiment runs."""
        raise TypeError(
            "a search has no points before it runs: its sampler proposes them as trials end; "
            "run it with Experiment(..., params=search(...)).run()"
        )

    def points(self, seed: int) -> Sequence[Params]:
        """Return no points: the experiment plans a search's runs as it asks for trials."""
        return []

    def __add__(self, other: ParamSpace) -> ParamSpace:
        """Refuse: a search cannot be joined to another space."""
        raise TypeError("a search cannot be added to another parameter space; run them apart")

    def __len__(self) -> int:
        return self.n

    def describe(self) -> dict[str, Any]:
        """Return the search as plain data: what its study is named after, and shown."""
        pruner = self.pruner if self.pruner is None or isinstance(self.pruner, str) else (
            type(self.pruner).__name__
        )  # fmt: skip
        return {
            "n": self.n,
            "metric": self.metric,
            "direction": self.direction,
            "sampler": self.sampler,
            "pruner": pruner,
            "seed": self.seed,
            "space": {name: repr(dist) for name, dist in self.dists},
        }

    def study_name(self, config: str) -> str:
        """Return the study's name: the experiment's identity and what the search asks for.

        ``n`` and ``parallel`` are left out: raising ``n`` continues the same study.
        """
        described = {k: v for k, v in self.describe().items() if k != "n"}
        return f"assay-{canonical_digest({'config': config, **described})[:24]}"


def search(
    n: int,
    *,
    metric: str,
    direction: Direction = "minimize",
    sampler: str = "tpe",
    pruner: Any = None,
    parallel: int | None = None,
    seed: int | None = None,
    **distributions: Distribution | Any,
) -> Search:
    """Return an adaptive search of ``n`` trials over the given distributions.

    Each trial is one run of the experiment (seed bundle, record, cache, index). The
    experiment asks the sampler (Optuna's; install the ``search`` extra) for ``parallel``
    trials at a time, runs them on its backend, tells the sampler the last value of
    ``metric`` each run recorded, and goes on until ``n`` trials have finished. The study is
    kept in the experiment folder: a killed search resumes where it stopped, and a finished
    one computes nothing when run again.

    Args:
        n: trials to run, at least 1.
        metric: the metric whose last recorded value is the trial's value.
        direction: ``"minimize"`` or ``"maximize"``.
        sampler: ``"tpe"`` (default), ``"random"``, ``"cmaes"`` (needs the ``cmaes``
            package) or ``"qmc"``; seeded from ``seed`` or the experiment's root seed.
        pruner: stops poor runs early: ``"median"``, ``"halving"``, ``"hyperband"``, an
            ``optuna.pruners.BasePruner``, or None. Runs report steps with
            ``capture.metric(metric, value, step=k)`` and ask ``capture.should_prune()``.
        parallel: trials run at once (default: the backend's worker or job limit; 1 inline).
        seed: the sampler's seed (default: the experiment's root seed).
        **distributions: [`uniform`][assay.uniform], [`loguniform`][assay.loguniform],
            [`randint`][assay.randint], [`choice`][assay.choice], or a fixed JSON-like value.

    Raises:
        ValueError: an argument is out of range, or a distribution is invalid (the message
            names it).

    Examples:
        >>> from assay import loguniform
        >>> space = search(20, metric="loss", lr=loguniform(1e-4, 1e-1), layers=2)
        >>> space.n, space.metric, space.direction
        (20, 'loss', 'minimize')

    """
    _check_count("n", n, minimum=1)
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"search(): metric = {metric!r}; expected a metric name")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"search(): direction = {direction!r}; expected 'minimize' or 'maximize'")
    if sampler not in SAMPLERS:
        raise ValueError(f"search(): sampler = {sampler!r}; expected one of {SAMPLERS}")
    _check_pruner(pruner)
    if parallel is not None:
        _check_count("parallel", parallel, minimum=1)
    if seed is not None:
        _check_count("seed", seed, minimum=0)
    if not distributions:
        raise ValueError("search(): no parameters; expected at least one distribution")
    dists = checked(distributions, "search()")
    return Search(n, metric, direction, sampler, pruner, parallel, seed, dists)


def _check_count(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"search(): {name} = {value!r}; expected an int >= {minimum}")


def _check_pruner(pruner: Any) -> None:
    if pruner is None or pruner in PRUNERS:
        return
    if isinstance(pruner, str) or not (
        hasattr(pruner, "prune") and type(pruner).__module__.startswith("optuna")
    ):
        raise ValueError(
            f"search(): pruner = {pruner!r}; expected one of {PRUNERS}, an "
            "optuna.pruners.BasePruner, or None"
        )
