"""A step's own code: the fingerprint of what its results depend on, and its report."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assay_ops import CodeFingerprint, fingerprint

from ._state import runtime_of

if TYPE_CHECKING:
    from ._step import Step


class class_or_instance:
    """A method that works on the class and on an instance (``Step.code_report``)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: object, owner: type) -> Callable[..., Any]:
        return functools.partial(self.func, owner if obj is None else obj)


def own_fingerprint(step: Step) -> CodeFingerprint | None:
    """Return the fingerprint of ``step``'s own code (None when its class pins a version).

    A step that travelled to another process carries the fingerprint it had where it was
    made, so that a class sent by value keeps its identity.
    """
    if type(step).code_version is not None:
        return None
    runtime = runtime_of(step)
    if runtime.carried_code is not None:
        if runtime.carried_print is None:
            runtime.carried_print = CodeFingerprint.from_dict(runtime.carried_code)
        return runtime.carried_print
    return fingerprint(*step._code_roots())


def code_report(step_or_class: Step | type[Step]) -> str:
    """Return what the code fingerprint of a step (or of a step class) covers, to print."""
    cls = step_or_class if isinstance(step_or_class, type) else type(step_or_class)
    if cls.code_version is not None:
        return f"{cls.__name__}: code version pinned by hand: {cls.code_version!r}"
    if not isinstance(step_or_class, type):
        return own_fingerprint(step_or_class).report()  # type: ignore[union-attr]
    return fingerprint(cls).report()
