"""``python -m assay``: the same as the ``assay`` command."""

from ._cli import entry_point

entry_point()
