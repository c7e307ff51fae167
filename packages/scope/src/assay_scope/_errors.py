"""The exceptions raised by assay_scope: a missing key and a value of the wrong type."""

from __future__ import annotations

from typing import Any


class MissingParameterError(KeyError):
    """A parameter was read without a default and no enclosing scope defines it.

    It is a ``KeyError``, so code written for mappings keeps working.

    Examples:
        >>> from assay_scope import param_scope
        >>> try:
        ...     param_scope.empty().lr()
        ... except KeyError as error:
        ...     print(error)
        parameter 'lr' is not set in any enclosing param_scope and no default was given

    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return (
            f"parameter {self.key!r} is not set in any enclosing param_scope "
            "and no default was given"
        )


class ConversionError(ValueError):
    """A stored value cannot be converted to the type of the default it was read with.

    The reference library returns the unconverted string in that case; assay refuses, so that
    ``epochs=abc`` on a command line fails loudly instead of reaching the training loop.

    Attributes:
        key: the dotted parameter name.
        value: the stored value.
        expected: the type the default asked for.

    Examples:
        >>> from assay_scope import param_scope
        >>> try:
        ...     param_scope(epochs="abc").epochs(10)
        ... except ValueError as error:
        ...     print(error)
        parameter 'epochs' = 'abc' cannot be converted to int (the type of its default 10)

    """

    def __init__(self, key: str, value: Any, default: Any, reason: str = "") -> None:
        self.key = key
        self.value = value
        self.expected = type(default)
        message = (
            f"parameter {key!r} = {value!r} cannot be converted to {self.expected.__name__} "
            f"(the type of its default {default!r})"
        )
        super().__init__(message + (f": {reason}" if reason else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pools and schedulers pickle a worker's exception back to the parent; the default
        # reduction would call __init__ with the message alone and fail there, which breaks
        # a process pool instead of reporting the bad value.
        return (
            _restore_conversion_error,
            (type(self), str(self), self.key, self.value, self.expected),
        )


def _restore_conversion_error(
    cls: type[ConversionError], message: str, key: str, value: Any, expected: type
) -> ConversionError:
    """Rebuild a pickled ``ConversionError`` with its message and attributes."""
    error = cls.__new__(cls)
    ValueError.__init__(error, message)
    error.key, error.value, error.expected = key, value, expected
    return error
