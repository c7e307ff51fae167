"""assay_steps — pydantic-configured pipeline steps whose every item is cached on disk.

Examples:
    >>> from assay_steps import Step
    >>> class Double(Step):
    ...     def _run(self, value: int) -> int:
    ...         return 2 * value
    >>> Double().run(21)
    42

"""

from .__about__ import __version__ as __version__
from ._backend import Backend, Cached
from ._chain import Chain
from ._compact import CompactReport, compact
from ._errors import BatchProtocolError, CodeChangedError
from ._func import Func
from ._inspect import (
    FolderInfo,
    PackedEntry,
    count_entries,
    entries_folders,
    folder_info,
    packed_entries,
)
from ._items import StepItems
from ._jobrefs import job_refs
from ._liveness import in_use
from ._lookup import LookupHandle
from ._migrate import MigrateReport, migrate
from ._paths import StepPaths
from ._step import Step
from ._task import ItemTask
from ._uid import ENCODING as UID_ENCODING
from ._uid import UID_TYPES

__all__ = [
    "UID_ENCODING",
    "UID_TYPES",
    "Backend",
    "BatchProtocolError",
    "Cached",
    "Chain",
    "CodeChangedError",
    "CompactReport",
    "FolderInfo",
    "Func",
    "ItemTask",
    "LookupHandle",
    "MigrateReport",
    "PackedEntry",
    "Step",
    "StepItems",
    "StepPaths",
    "compact",
    "count_entries",
    "entries_folders",
    "folder_info",
    "in_use",
    "job_refs",
    "migrate",
    "packed_entries",
]
