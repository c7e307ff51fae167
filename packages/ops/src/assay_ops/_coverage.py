"""What a code fingerprint says of each function it covers and each reference it cannot follow.

[`FunctionPrint`][assay_ops.FunctionPrint] and [`Unresolved`][assay_ops.Unresolved] are the entries
of a [`CodeFingerprint`][assay_ops.CodeFingerprint]; the walk makes them, the fingerprint lists
them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _shown(file: str) -> str:
    """``file`` relative to the working directory when it lies below it."""
    if not file or file.startswith("<"):
        return file
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive
        return file
    return file if relative.startswith(os.pardir) else relative


@dataclass(frozen=True)
class FunctionPrint:
    """One function, method or class that a fingerprint covers.

    Attributes:
        digest: 16 hex digits of what was hashed (see ``basis``).
        file: The file it is defined in.
        line: The line of its ``def`` or ``class`` statement.
        basis: What was hashed: ``"source"`` (its normalised syntax tree), ``"bytecode"``
            (its source was not found) or ``"name"`` (a root in library code, which counts
            by its name only).

    Examples:
        >>> FunctionPrint("0123456789abcdef", "/nowhere/models.py", 12).location
        '/nowhere/models.py:12'

    """

    digest: str
    file: str
    line: int
    basis: str = "source"

    @property
    def location(self) -> str:
        """``file:line``, the file relative to the working directory when below it."""
        return f"{_shown(self.file)}:{self.line}"


@dataclass(frozen=True, order=True)
class Unresolved:
    """A reference the fingerprint cannot follow: a change through it goes unnoticed.

    Attributes:
        where: The qualified name of the function or class holding the reference.
        name: The reference as written (``"getattr"``, ``"helpers.missing"``, ``"TABLE"``).
        reason: Why it is not followed.

    """

    where: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name}: {self.reason}"
