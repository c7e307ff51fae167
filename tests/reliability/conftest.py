"""Makes the suite's shared helpers importable, by the tests and by their worker processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Print the figures the suite gathered (kill points, wrong values, duplicates...)."""
    from audit import FIGURES

    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture
def quick_stale_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locks whose owner cannot be identified turn stale after 0.3 s instead of minutes.

    A worker killed while it writes an entry into its lock file leaves a lock whose content
    no longer names its process; it is recognised as stale by its age only. The crash tests
    shorten that age so that hundreds of kill points fit in the time budget; forked workers
    inherit the setting. No live worker runs beside them, so no live lock is taken over.
    """
    from assay_steps import _locks

    monkeypatch.setattr(_locks, "STALE_SECONDS", 0.3)
