"""Exceptions of the steps layer."""

from __future__ import annotations


class BatchProtocolError(RuntimeError):
    """``_run_batch`` did not yield exactly one result per input.

    Example:
        >>> issubclass(BatchProtocolError, RuntimeError)
        True

    """
