"""assay_scope — hyperparameter scopes that reach deep code without plumbing.

A drop-in for ``hyperparameter`` ≤ 0.5 (``param_scope``, ``auto_param``, ``launch``,
``run_cli``), standard library only, with strict conversions, per-task isolation and a record
of the parameters a run read.
"""

from .__about__ import __version__ as __version__
from ._accessor import Accessor, CurrentAccessor
from ._auto import auto_param
from ._base import isolated_base
from ._cli import launch, run_cli
from ._errors import ConversionError, MissingParameterError
from ._record import Record, Recording
from ._scope import param_scope
from ._storage import ScopeStorage
from ._threads import ScopedThread, bind_scope

__all__ = [
    "Accessor",
    "ConversionError",
    "CurrentAccessor",
    "MissingParameterError",
    "Record",
    "Recording",
    "ScopeStorage",
    "ScopedThread",
    "auto_param",
    "bind_scope",
    "isolated_base",
    "launch",
    "param_scope",
    "run_cli",
]
