"""Names ``assay`` re-exported until 0.1 and no longer does, and where each lives now.

Up to 0.1, ``import assay`` re-exported every public name of the five layers. The user's API
(``assay.__all__``) is now what a researcher writes to run sweeps; the rest of each layer (its
extension points and tools) is imported from that layer. The names below still resolve for
one release, with a ``DeprecationWarning`` that names the module to import them from.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: Each layer's names that left ``assay``, and the layer they are imported from now. A list
#: fixed at the names re-exported up to 0.1: a name a layer adds later was never in ``assay``.
MOVED: dict[str, str] = {
    **dict.fromkeys(
        (
            "Accessor",
            "ConversionError",
            "CurrentAccessor",
            "MissingParameterError",
            "Record",
            "Recording",
            "ScopeStorage",
            "ScopedThread",
            "bind_scope",
            "isolated_base",
            "launch",
            "run_cli",
        ),
        "assay_scope",
    ),
    **dict.fromkeys(
        (
            "MAX_NESTING",
            "ArtifactLog",
            "ArtifactRecord",
            "ContextMutationError",
            "FrozenDict",
            "FrozenList",
            "FrozenMetrics",
            "LoggingContext",
            "freeze",
            "nesting_depth",
            "thaw",
        ),
        "assay_context",
    ),
    **dict.fromkeys(
        (
            "CANONICAL_VERSION",
            "DEFAULT_ROOT_SEED",
            "INJECTABLE",
            "RECORD_FORMAT",
            "CodeFingerprint",
            "ErrorInfo",
            "FunctionPrint",
            "GitState",
            "OperationWrapper",
            "Unresolved",
            "canonical_bytes",
            "canonical_digest",
            "checkpoint_now",
            "code_hash",
            "fingerprint",
            "git_state",
            "import_operation",
            "is_infrastructure_error",
        ),
        "assay_ops",
    ),
    **dict.fromkeys(
        (
            "UID_ENCODING",
            "Backend",
            "BatchProtocolError",
            "CompactReport",
            "FolderInfo",
            "Func",
            "ItemTask",
            "LookupHandle",
            "MigrateReport",
            "PackedEntry",
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
        ),
        "assay_steps",
    ),
    **dict.fromkeys(
        (
            "JobError",
            "JobFailure",
            "JobsFailed",
            "SlurmUnavailableError",
            "SubmititDebug",
            "current_job",
            "current_job_logs",
            "job_logs",
            "job_states",
            "slurm_available",
            "watch",
        ),
        "assay_backends",
    ),
}

#: The experiment layer's own names that left: internals of a sweep (its SQLite index, its
#: planned runs), which a user reaches through ``Experiment`` and ``Results``.
INTERNAL: dict[str, str] = {"ResultsIndex": "assay._index", "RunSpec": "assay._runs"}


def moved(name: str) -> Any:
    """Return what ``assay.<name>`` was before it left the user's API, with a warning.

    Args:
        name: An attribute of ``assay`` that is not in ``assay.__all__``.

    Returns:
        The object, from the module it lives in now.

    Raises:
        AttributeError: ``assay`` never had ``name``.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     moved("launch").__name__
        'launch'
        >>> print(caught[0].message)
        assay.launch is deprecated; import it from assay_scope

    """
    if name in MOVED:
        module = MOVED[name]
        message = f"assay.{name} is deprecated; import it from {module}"
    elif name in INTERNAL:
        module = INTERNAL[name]
        message = (
            f"assay.{name} is deprecated; it is internal to the experiment layer "
            f"(Experiment and Results use it), in {module}"
        )
    else:
        raise AttributeError(f"module 'assay' has no attribute {name!r}")
    # stacklevel 3: this function, then assay.__getattr__, then the code that named it
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(module), name)
