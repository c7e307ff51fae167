"""The state a step carries besides its configuration: its runtime state, and "no input".

Neither enters the uid or the equality of a step; the runtime state is dropped on pickling
(a step sent to another process carries only its code fingerprint, see ``Step.__getstate__``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from assay_ops import CodeFingerprint

from ._code import CodeIdentity
from ._store import EntryStore

if TYPE_CHECKING:
    from ._step import Step

NOINPUT_UID = "noinput"


class _NoValue:
    """Sentinel for "no input" (generator steps)."""

    def __repr__(self) -> str:
        return "<no value>"

    def __reduce__(self) -> str:
        return "NOVALUE"  # unpickles to the module-level singleton


NOVALUE: Any = _NoValue()


@dataclasses.dataclass
class _Runtime:
    """Per-instance state, dropped on pickling: entry stores and items already forced."""

    stores: dict[tuple[str, str], EntryStore] = dataclasses.field(default_factory=dict)
    codes: dict[tuple[str, str], CodeIdentity] = dataclasses.field(default_factory=dict)
    attempted: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    #: The fingerprint of the step's code in the process that pickled it (as a dict): a step
    #: sent to another process keeps the code identity it was sent with, even where its class
    #: arrives without source (a class pickled by value).
    carried_code: dict[str, Any] | None = None
    carried_print: CodeFingerprint | None = dataclasses.field(default=None, repr=False)
    #: The store of the step on its own, fixed for the length of one ``run_many`` call (its
    #: key, a hash of the configuration, is then computed once per call, not per use).
    pinned: EntryStore | None = dataclasses.field(default=None, repr=False)
    #: The step ``_resolve_step()`` last gave: kept while it gives an equal one, so that the
    #: resolution's own state (the items it forced) lasts as long as this instance.
    resolution: Step | None = dataclasses.field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        # Runtime state never makes two equal configurations differ.
        return isinstance(other, _Runtime)

    __hash__ = None  # type: ignore[assignment]


def runtime_of(step: Step) -> _Runtime:
    """Return a step's runtime state (read directly: pydantic's attribute fallback is slow)."""
    runtime: _Runtime = step.__pydantic_private__["_runtime"]  # type: ignore[index]
    return runtime
