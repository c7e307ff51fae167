"""LiveChannel: where a run's metrics go while it runs, and who may tell it to stop early."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LiveChannel(Protocol):
    """What a ``Capture`` reports its metrics to as they are recorded, and asks about stopping.

    A channel connects a running operation with something watching it: a stream other
    processes read, a rule that stops runs unlikely to beat the others (early stopping). The
    capture calls ``report`` after each metric it has accepted, and ``should_prune`` when the
    operation asks ``capture.should_prune()``. Any object with these two methods is one; a
    channel that raises does not end the run (the capture logs a warning and keeps the metric).

    Examples:
        >>> class Printer:
        ...     def report(self, name, value, step):
        ...         print(name, value, step)
        ...     def should_prune(self):
        ...         return False
        >>> isinstance(Printer(), LiveChannel)
        True

    """

    def report(self, name: str, value: Any, step: int | None) -> None:
        """Take one value of metric ``name``, recorded at ``step`` (``None`` when not given)."""

    def should_prune(self) -> bool:
        """Return whether the run should stop now (its record then says ``"pruned"``)."""
