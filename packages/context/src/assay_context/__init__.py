"""assay_context — frozen, set-once experiment context with metrics and artifacts.

A `FrozenContext` holds the shared state of a run: a key, once set, keeps its value, and
values are deep-frozen so no reader can change what later readers see (a dict reads back as a
read-only `FrozenDict`, a list as a read-only `FrozenList`: equal to the originals, and
serialisable with ``json``). Metrics accumulate in
`FrozenMetrics`, files and objects in `ArtifactLog`, and `LoggingContext`
reports which keys a run read. The API follows ``crystallize.utils.context``.
"""

from .__about__ import __version__ as __version__
from ._artifacts import ArtifactLog, ArtifactRecord
from ._context import FrozenContext
from ._errors import ContextMutationError
from ._freeze import freeze, thaw
from ._frozen import FrozenDict, FrozenList
from ._logging import LoggingContext
from ._metrics import FrozenMetrics
from ._nesting import MAX_NESTING, nesting_depth

__all__ = [
    "MAX_NESTING",
    "ArtifactLog",
    "ArtifactRecord",
    "ContextMutationError",
    "FrozenContext",
    "FrozenDict",
    "FrozenList",
    "FrozenMetrics",
    "LoggingContext",
    "freeze",
    "nesting_depth",
    "thaw",
]
