"""assay — a toolkit for computational experiments researchers can trust.

``import assay`` gives what a researcher writes to run sweeps, and only that:

- the operation and what it asks for: ``operation``, ``SeedBundle``, ``Capture``,
  ``Runtime`` and ``FrozenContext`` (for its annotations), ``param_scope`` and
  ``auto_param`` (for parameters read deep in the code);
- the sweep: the spaces ``grid``, ``random``, ``explicit`` (``ParamSpace``) and the
  distributions ``uniform``, ``loguniform``, ``randint``, ``choice`` (``Distribution``);
  ``Experiment``; the backends it runs on (``Cached``, the default, ``ThreadPool``,
  ``ProcessPool``, ``LocalProcess``, ``Slurm``, ``Auto``); the errors it stops with
  (``FolderConflictError``, ``CodeChangedError``, ``InfrastructureError``);
- what it gives back: ``Results``, ``RunRow``, ``RunRecord``, ``RunSummary``, ``reproduce``
  and its ``ReproduceReport``;
- cached pipelines of steps: ``Step`` and ``Chain``.

Why curated: ``dir(assay)``, tab completion and the API reference show a namespace a user
can read in full, and each name has one home. A layer's extension points and tools (the
``Backend`` base class, ``LookupHandle``, ``StepPaths``, ``Func``, code fingerprints,
canonical encodings, cache maintenance, job helpers...) are imported from that layer
(``from assay_steps import Backend``), where its whole API is documented and where it works
without the layers above it.

Names are imported on first use (PEP 562), so that a command such as ``assay status``
starts without importing every layer (numpy, pydantic, submitit...). Names re-exported up to
0.1 that are not in the list still resolve for one release, with a ``DeprecationWarning``
naming the module to import them from.

Examples:
    >>> import assay
    >>> len(assay.grid(n=[10, 100], method=["a", "b"]).expand(seed=0))
    4

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__ as __version__

if TYPE_CHECKING:  # what type checkers and documentation tools see; at run time, on demand
    from assay_backends import Auto as Auto
    from assay_backends import LocalProcess as LocalProcess
    from assay_backends import ProcessPool as ProcessPool
    from assay_backends import Slurm as Slurm
    from assay_backends import ThreadPool as ThreadPool
    from assay_context import FrozenContext as FrozenContext
    from assay_ops import Capture as Capture
    from assay_ops import RunRecord as RunRecord
    from assay_ops import Runtime as Runtime
    from assay_ops import SeedBundle as SeedBundle
    from assay_ops import operation as operation
    from assay_scope import auto_param as auto_param
    from assay_scope import param_scope as param_scope
    from assay_steps import Cached as Cached
    from assay_steps import Chain as Chain
    from assay_steps import CodeChangedError as CodeChangedError
    from assay_steps import Step as Step

    from ._comparison import ReproduceReport as ReproduceReport
    from ._distributions import Distribution as Distribution
    from ._distributions import choice as choice
    from ._distributions import loguniform as loguniform
    from ._distributions import randint as randint
    from ._distributions import uniform as uniform
    from ._experiment import Experiment as Experiment
    from ._identity import FolderConflictError as FolderConflictError
    from ._infrastructure import InfrastructureError as InfrastructureError
    from ._median import MedianRule as MedianRule
    from ._outcomes import RunSummary as RunSummary
    from ._reproduce import reproduce as reproduce
    from ._results import Results as Results
    from ._rows import RunRow as RunRow
    from ._search import search as search
    from ._space import ParamSpace as ParamSpace
    from ._space import explicit as explicit
    from ._space import grid as grid
    from ._space import random as random

#: The user's API, part 1: the experiment layer's own names, and the module of each.
#: Adding a name to the API is one line here (and its import above, for type checkers).
_OWN = {
    "Distribution": "_distributions",
    "Experiment": "_experiment",
    "FolderConflictError": "_identity",
    "InfrastructureError": "_infrastructure",
    "MedianRule": "_median",
    "ParamSpace": "_space",
    "ReproduceReport": "_comparison",
    "Results": "_results",
    "RunRow": "_rows",
    "RunSummary": "_outcomes",
    "choice": "_distributions",
    "explicit": "_space",
    "grid": "_space",
    "loguniform": "_distributions",
    "randint": "_distributions",
    "random": "_space",
    "reproduce": "_reproduce",
    "search": "_search",
    "uniform": "_distributions",
}
#: The user's API, part 2: the names of the layers a sweep is written with, and the layer of
#: each. Every other public name of a layer is imported from that layer.
_FROM_LAYERS = {
    "param_scope": "assay_scope",
    "auto_param": "assay_scope",
    "FrozenContext": "assay_context",
    "operation": "assay_ops",
    "SeedBundle": "assay_ops",
    "Capture": "assay_ops",
    "Runtime": "assay_ops",
    "RunRecord": "assay_ops",
    "Step": "assay_steps",
    "Chain": "assay_steps",
    "Cached": "assay_steps",
    "CodeChangedError": "assay_steps",
    "ThreadPool": "assay_backends",
    "ProcessPool": "assay_backends",
    "LocalProcess": "assay_backends",
    "Slurm": "assay_backends",
    "Auto": "assay_backends",
}

__all__ = sorted([*_OWN, *_FROM_LAYERS])


def __getattr__(name: str) -> Any:
    if name in _OWN:
        value = getattr(importlib.import_module(f"{__name__}.{_OWN[name]}"), name)
    elif name in _FROM_LAYERS:
        value = getattr(importlib.import_module(_FROM_LAYERS[name]), name)
    else:
        from ._moved import moved

        return moved(name)  # a name that left the API warns on every use: never kept here
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
