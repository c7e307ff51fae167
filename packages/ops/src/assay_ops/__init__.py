"""assay_ops — operations with reproducible seeds, metric and artifact capture, run records.

An operation is a plain function that asks only for what it needs among ``context``, ``params``,
``seeds``, ``runtime`` and ``capture``; running it gives a [`RunRecord`][assay_ops.RunRecord].
"""

from .__about__ import __version__ as __version__
from ._canonical import (
    CANONICAL_VERSION,
    MAX_ENCODED_NESTING,
    canonical_bytes,
    canonical_digest,
    canonical_hasher,
)
from ._capture import Capture
from ._checkpoint import checkpoint_now
from ._codehash import code_hash
from ._fingerprint import CodeFingerprint, FunctionPrint, Unresolved, fingerprint
from ._infrastructure import is_infrastructure_error
from ._injection import INJECTABLE
from ._live import LiveChannel
from ._operation import OperationWrapper, import_operation, operation
from ._provenance import GitState, git_state
from ._record import RECORD_FORMAT, ErrorInfo, RunRecord
from ._runtime import Runtime
from ._seeds import DEFAULT_ROOT_SEED, SeedBundle

__all__ = [
    "CANONICAL_VERSION",
    "DEFAULT_ROOT_SEED",
    "INJECTABLE",
    "MAX_ENCODED_NESTING",
    "RECORD_FORMAT",
    "Capture",
    "CodeFingerprint",
    "ErrorInfo",
    "FunctionPrint",
    "GitState",
    "LiveChannel",
    "OperationWrapper",
    "RunRecord",
    "Runtime",
    "SeedBundle",
    "Unresolved",
    "canonical_bytes",
    "canonical_digest",
    "canonical_hasher",
    "checkpoint_now",
    "code_hash",
    "fingerprint",
    "git_state",
    "import_operation",
    "is_infrastructure_error",
    "operation",
]
