"""Helpers shared by the cross-package tests (``tests/``), one module per concept.

Each package's own tests (``packages/<name>/tests``) keep their shared helpers in their own
folder (``steps_testkit.py``, ``store_testkit.py``, ``backends_testkit.py``): a package's
tests import nothing from above their package, so that they run as that package's tests.
"""
