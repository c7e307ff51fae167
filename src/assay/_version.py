"""The versions of assay and of its layer packages, as ``assay --version`` prints them."""

from __future__ import annotations

import platform
from importlib import metadata

#: The distributions of assay: the meta-package, then its layers from the bottom up.
DISTRIBUTIONS = (
    "assay",
    "assay-scope",
    "assay-context",
    "assay-ops",
    "assay-steps",
    "assay-backends",
)


def version_lines() -> list[str]:
    """Return ``<distribution> <version>`` for assay and each layer, then the Python version.

    Versions are those of the installed distributions (their metadata), so that a report
    says what is installed; a layer that is not installed says so.

    Examples:
        >>> lines = version_lines()
        >>> [line.split()[0] for line in lines]  # doctest: +NORMALIZE_WHITESPACE
        ['assay', 'assay-scope', 'assay-context', 'assay-ops', 'assay-steps', 'assay-backends',
         'Python']

    """
    lines = []
    for name in DISTRIBUTIONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name} {version}")
    lines.append(f"Python {platform.python_version()} ({platform.python_implementation()})")
    return lines
