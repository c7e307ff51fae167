"""Exceptions of the steps layer."""

from __future__ import annotations


class BatchProtocolError(RuntimeError):
    """``_run_batch`` did not yield exactly one result per input.

    Examples:
        >>> issubclass(BatchProtocolError, RuntimeError)
        True

    """


class CodeChangedError(ValueError):
    """The code behind cached results changed since they were written.

    Raised when a cache holds entries of other code and the policy is
    ``on_code_change="error"`` (the default): the message names each function that changed,
    with its file and line, and how to choose.

    Attributes:
        what: What changed, without the advice on what to do (so that a command line can
            give it with its own option names).

    Examples:
        >>> str(CodeChangedError("step Mult changed")).startswith("step Mult changed;")
        True

    """

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}; pass on_code_change='rerun' to compute them again or "
            "on_code_change='keep' to keep their results"
        )
        self.what = what
