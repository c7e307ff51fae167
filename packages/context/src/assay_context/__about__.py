"""The version of assay-context, its one source: the build reads it from this file as text."""

__version__ = "0.1.0"
