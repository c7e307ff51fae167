"""assay_steps — pydantic-configured pipeline steps whose every item is cached on disk.

Example:
    >>> from assay_steps import Step
    >>> class Double(Step):
    ...     def _run(self, value: int) -> int:
    ...         return 2 * value
    >>> Double().run(21)
    42

"""

from ._backend import Backend, Cached, ItemTask
from ._errors import BatchProtocolError
from ._func import Func
from ._items import StepItems
from ._lookup import LookupHandle
from ._paths import StepPaths
from ._step import Chain, Step

__all__ = [
    "Backend",
    "BatchProtocolError",
    "Cached",
    "Chain",
    "Func",
    "ItemTask",
    "LookupHandle",
    "Step",
    "StepItems",
    "StepPaths",
]
