"""assay — a toolkit for computational experiments researchers can trust.

The meta-package re-exports the public API of every layer (``assay_scope``,
``assay_context``, ``assay_ops``, ``assay_steps``, ``assay_backends``) and adds the experiment
layer: parameter spaces, ``Experiment`` sweeps, ``Results`` and the ``assay`` command.

Example:
    >>> import assay
    >>> len(assay.grid(n=[10, 100], method=["a", "b"]).expand(seed=0))
    4

"""

import assay_backends
import assay_context
import assay_ops
import assay_scope
import assay_steps

# Star imports follow each layer's __all__, so the re-exports can never drift from the layers.
from assay_backends import *  # noqa: F403
from assay_context import *  # noqa: F403
from assay_ops import *  # noqa: F403
from assay_scope import *  # noqa: F403
from assay_steps import *  # noqa: F403

from ._experiment import Experiment, FolderConflictError, RunSummary
from ._index import ResultsIndex, RunRow
from ._infrastructure import InfrastructureError
from ._reproduce import ReproduceReport, reproduce
from ._results import Results
from ._runs import RunSpec
from ._space import (
    Distribution,
    ParamSpace,
    choice,
    explicit,
    grid,
    loguniform,
    randint,
    random,
    uniform,
)

#: The layers whose public names ``assay`` re-exports, lowest first.
LAYERS = (assay_scope, assay_context, assay_ops, assay_steps, assay_backends)

# The experiment layer's own names, then every layer's public names.
__all__ = [
    "Distribution",
    "Experiment",
    "FolderConflictError",
    "InfrastructureError",
    "ParamSpace",
    "ReproduceReport",
    "Results",
    "ResultsIndex",
    "RunRow",
    "RunSpec",
    "RunSummary",
    "choice",
    "explicit",
    "grid",
    "loguniform",
    "randint",
    "random",
    "reproduce",
    "uniform",
]
__all__ += assay_scope.__all__
__all__ += assay_context.__all__
__all__ += assay_ops.__all__
__all__ += assay_steps.__all__
__all__ += assay_backends.__all__
