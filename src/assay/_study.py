"""The Optuna study of a search, kept in the experiment folder.

The study lives in ``<folder>/search/journal.log`` (Optuna's journal file storage: appends
under a file lock, safe on shared file systems) and is named after the experiment's identity
and the search's description, so a rerun of the same search finds its trials again.

Trials are asked in batches and told in trial-number order, whatever order their runs end
in; each ask uses a sampler seeded from (the search's seed, the trial number). So a search's
trials depend on its seed and its history only: the same inline, on a pool, and after a
resume (a sampler's random state is never lost with a killed driver).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._best import finite
from ._distributions import Distribution, choice, loguniform, randint, uniform
from ._search import Search

#: The study's file, inside the experiment folder.
JOURNAL = Path("search") / "journal.log"
#: What the message of a missing Optuna tells to install.
EXTRA = "pip install 'assay[search]' (or: pip install optuna)"
_PRIMITIVE = (type(None), bool, int, float, str)


def require_optuna() -> Any:
    """Return the ``optuna`` module, or raise an ImportError naming the extra to install."""
    try:
        import optuna
    except ImportError as error:
        raise ImportError(
            f"assay.search needs Optuna, an optional extra that is not installed: {EXTRA}"
        ) from error
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's line per trial while a search runs (assay prints its own summary)."""
    optuna = require_optuna()
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


class SearchStudy:
    """A search's Optuna study: asks trials, translates their params, tells their values.

    Args:
        folder: the experiment folder.
        search: the search.
        config: the experiment's identity (its config uid).
        root_seed: the experiment's root seed (the sampler's, unless the search sets one).

    """

    def __init__(self, folder: Path, search: Search, config: str, root_seed: int) -> None:
        optuna = require_optuna()
        self.search = search
        self.name = search.study_name(config)
        self.seed = search.seed if search.seed is not None else root_seed
        (folder / JOURNAL.parent).mkdir(parents=True, exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
        self.study = optuna.create_study(
            study_name=self.name,
            storage=storage,
            load_if_exists=True,
            direction=search.direction,
            sampler=self._sampler(0),
            pruner=_pruner(optuna, search.pruner),
        )
        #: Whether runs may be stopped early (the search has a pruner).
        self.prunes = search.pruner is not None
        self.fixed = {
            name: dist.options[0]
            for name, dist in search.dists
            if isinstance(dist, choice) and len(dist.options) == 1
        }
        self.space = {
            name: _distribution(optuna, name, dist)
            for name, dist in search.dists
            if name not in self.fixed
        }

    # -------------------------------------------------------------- trials

    def counts(self) -> tuple[int, list[Any]]:
        """Return the number of finished trials and the trials asked but not told, by number."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        return len(trials) - len(running), sorted(running, key=lambda t: t.number)

    def next_batch(self, parallel: int) -> list[Any]:
        """Return the next trials to run (``optuna.Trial``), at most ``parallel``.

        Trials asked by an earlier driver and never told (it was killed) come first; new
        trials are asked while fewer than ``n`` are finished or running. Empty: done.
        """
        from optuna.trial import Trial

        finished, running = self.counts()
        if running:
            return [Trial(self.study, t._trial_id) for t in running[:parallel]]
        batch = []
        for number in range(finished, min(finished + parallel, self.search.n)):
            self.study.sampler = self._sampler(number)
            batch.append(self.study.ask(self.space))
        return batch

    def complete_asked(self) -> int:
        """Give the trials asked but not told every parameter of the space; return how many.

        A driver killed in the middle of an ask leaves a trial with some parameters only
        (Optuna writes them one by one): the missing ones are asked now, from the sampler
        that trial would have had, so that the trial can run.
        """
        from optuna.trial import Trial

        completed = 0
        for frozen in self.counts()[1]:
            missing = [name for name in self.space if name not in frozen.params]
            if not missing:
                continue
            self.study.sampler = self._sampler(frozen.number)
            trial = Trial(self.study, frozen._trial_id)
            for name in missing:
                _suggest(trial, name, self.space[name])
            completed += 1
        return completed

    def params(self, trial: Any) -> dict[str, Any]:
        """Return the run parameters of ``trial``, in the search's order, fixed ones included."""
        chosen = trial.params
        out = {}
        for name, dist in self.search.dists:
            if name in self.fixed:
                out[name] = self.fixed[name]
            elif isinstance(dist, choice) and not _primitive(dist.options):
                out[name] = dist.options[chosen[name]]  # asked as the option's position
            else:
                out[name] = chosen[name]
        return out

    def tell(self, trial: Any, status: str, metrics: Mapping[str, Any]) -> str | None:
        """Tell the study how ``trial``'s run ended; return why it counts as failed, or None.

        A successful run's value is the last value of the search's metric; a run without it
        (or with a value that is not a finite number) is a failed trial. ``pruned`` runs are
        pruned trials, ``failed`` and ``timeout`` ones failed trials.
        """
        from optuna.trial import TrialState

        if status == "pruned":
            self.study.tell(trial.number, state=TrialState.PRUNED)
            return None
        if status == "success":
            value = metrics.get(self.search.metric)
            number = finite(value)
            if number is not None:
                self.study.tell(trial.number, number)
                return None
            why = (
                f"run recorded no metric {self.search.metric!r}"
                if value is None
                else f"metric {self.search.metric!r} = {value!r}; expected a finite number"
            )
        else:
            why = f"run {status}"
        trial.set_user_attr("failed", why)
        self.study.tell(trial.number, state=TrialState.FAIL)
        return why

    def _sampler(self, number: int) -> Any:
        import numpy as np
        import optuna

        kind = self.search.sampler
        if kind == "qmc":  # a low-discrepancy sequence: one scramble for the whole search
            return optuna.samplers.QMCSampler(seed=self.seed % 2**32)
        seed = int(np.random.SeedSequence([self.seed, 0x5EA4C4, number]).generate_state(1)[0])
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if kind == "cmaes":
            try:
                importlib.import_module("cmaes")
            except ImportError as error:
                raise ImportError(
                    "search(sampler='cmaes') needs the cmaes package: pip install cmaes"
                ) from error
            return optuna.samplers.CmaEsSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
    """Ask ``trial`` for parameter ``name`` of ``distribution`` (Optuna's public calls)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high)
    return trial.suggest_categorical(name, distribution.choices)


def parallelism(infra: Any) -> int:
    """Return how many runs the backend ``infra`` runs at once (1 inline)."""
    limit = getattr(infra, "max_jobs", None)
    if infra is None or not isinstance(limit, int):
        return 1
    if getattr(type(infra), "submits_jobs", False):
        return limit
    return max(1, min(limit, os.cpu_count() or 1))


def _pruner(optuna: Any, pruner: Any) -> Any:
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return pruner


def _distribution(optuna: Any, name: str, dist: Distribution) -> Any:
    """Return Optuna's distribution for ``dist`` (of parameter ``name``)."""
    d = optuna.distributions
    if isinstance(dist, uniform):
        return d.FloatDistribution(dist.low, dist.high)
    if isinstance(dist, loguniform):
        return d.FloatDistribution(dist.low, dist.high, log=True)
    if isinstance(dist, randint):  # assay's high is exclusive, as numpy's; Optuna's inclusive
        return d.IntDistribution(dist.low, dist.high - 1)
    if isinstance(dist, choice):
        options = list(dist.options)
        # Optuna's choices are plain scalars: lists and dicts are asked by position
        return d.CategoricalDistribution(
            options if _primitive(options) else list(range(len(options)))
        )
    raise TypeError(f"search(): parameter {name!r} = {dist!r}; expected an assay distribution")


def _primitive(options: Any) -> bool:
    return all(isinstance(option, _PRIMITIVE) for option in options)
