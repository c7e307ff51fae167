"""The exception raised when code tries to change a value that was set once."""

from __future__ import annotations


class ContextMutationError(Exception):
    """Raised when code tries to overwrite a context key or reuse an artifact name.

    The message names the offending key, so the failing step is easy to find.

    Examples:
        >>> from assay_context import FrozenContext
        >>> ctx = FrozenContext({"lr": 0.1})
        >>> ctx["lr"] = 0.2
        Traceback (most recent call last):
        ...
        assay_context._errors.ContextMutationError: context key 'lr' is already set to 0.1; ...

    """
