"""assay — a toolkit for computational experiments researchers can trust.

The meta-package re-exports the public API of every layer (``assay_scope``,
``assay_context``, ``assay_ops``, ``assay_steps``, ``assay_backends``) and adds the experiment
layer: parameter spaces, ``Experiment`` sweeps, ``Results`` and the ``assay`` command.

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
    from types import ModuleType

    from assay_backends import *  # noqa: F403
    from assay_context import *  # noqa: F403
    from assay_ops import *  # noqa: F403
    from assay_scope import *  # noqa: F403
    from assay_steps import *  # noqa: F403

    from ._comparison import ReproduceReport as ReproduceReport
    from ._distributions import Distribution as Distribution
    from ._distributions import choice as choice
    from ._distributions import loguniform as loguniform
    from ._distributions import randint as randint
    from ._distributions import uniform as uniform
    from ._experiment import Experiment as Experiment
    from ._identity import FolderConflictError as FolderConflictError
    from ._index import ResultsIndex as ResultsIndex
    from ._infrastructure import InfrastructureError as InfrastructureError
    from ._outcomes import RunSummary as RunSummary
    from ._reproduce import reproduce as reproduce
    from ._results import Results as Results
    from ._rows import RunRow as RunRow
    from ._runs import RunSpec as RunSpec
    from ._space import ParamSpace as ParamSpace
    from ._space import explicit as explicit
    from ._space import grid as grid
    from ._space import random as random

    LAYERS: tuple[ModuleType, ...]

#: The experiment layer's own names, and the module of each. Names are imported when first
#: used (PEP 562), so that a command such as ``assay status`` starts without importing every
#: layer (numpy, pydantic, submitit...).
_OWN = {
    "Distribution": "_distributions",
    "Experiment": "_experiment",
    "FolderConflictError": "_identity",
    "InfrastructureError": "_infrastructure",
    "ParamSpace": "_space",
    "ReproduceReport": "_comparison",
    "Results": "_results",
    "ResultsIndex": "_index",
    "RunRow": "_rows",
    "RunSpec": "_runs",
    "RunSummary": "_outcomes",
    "choice": "_distributions",
    "explicit": "_space",
    "grid": "_space",
    "loguniform": "_distributions",
    "randint": "_distributions",
    "random": "_space",
    "reproduce": "_reproduce",
    "uniform": "_distributions",
}
#: The layers whose public names ``assay`` re-exports, lowest first.
_LAYER_NAMES = ("assay_scope", "assay_context", "assay_ops", "assay_steps", "assay_backends")


def _layers() -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(name) for name in _LAYER_NAMES)


def _public_names() -> list[str]:
    # The experiment layer's own names, then every layer's public names: they follow each
    # layer's __all__, so the re-exports can never drift from the layers.
    names = sorted(_OWN)
    for layer in _layers():
        names += layer.__all__
    return names


def __getattr__(name: str) -> Any:
    if name in _OWN:
        value = getattr(importlib.import_module(f"{__name__}.{_OWN[name]}"), name)
    elif name == "__all__":
        value = _public_names()
    elif name == "LAYERS":
        value = _layers()
    else:
        for layer in _layers():
            if name in layer.__all__:
                value = getattr(layer, name)
                break
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_public_names(), "LAYERS"})
