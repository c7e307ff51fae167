"""How the modes of the steps of a pipeline combine into the mode each cache runs in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._step import Step

# force outranks retry: a recomputed result replaces an error as well as a success.
_RANK = {"cached": 0, "retry": 1, "force": 2}


def fold_modes(modes: Iterable[str], where: str) -> str:
    """Return the mode in effect after ``modes``, met in pipeline order.

    ``"force"`` and ``"retry"`` carry over to what comes after (whose inputs they
    recompute); ``"read-only"`` concerns its own step only. ``"read-only"`` after
    ``"force"`` is refused: the read-only results were computed from inputs that force
    recomputes, so they would be stale.

    Args:
        modes: The modes, in pipeline order.
        where: What the modes belong to, for the error message.

    Raises:
        ValueError: ``"read-only"`` comes after ``"force"``.

    Examples:
        >>> fold_modes(["cached", "force", "cached"], "chain")
        'force'
        >>> fold_modes(["read-only", "cached"], "chain")
        'cached'

    """
    folded = "cached"
    for mode in modes:
        if mode == "read-only":
            if folded == "force":
                raise ValueError(
                    f"{where} has a step in mode='read-only' after one in mode='force': its "
                    "cached results would be stale (their inputs are recomputed); expected "
                    "mode='force' or mode='cached' there, or no mode='force' before it"
                )
            folded = "read-only"
        elif folded == "read-only" or _RANK[mode] > _RANK[folded]:
            folded = mode
    return folded


def effective_mode(step: Step) -> str:
    """Return the mode ``step`` runs its cache in, once the modes of its sub-steps count.

    A step whose sub-step (a step of a chain, at any depth, or a step held in a field) is
    forced is forced too: its results depend on that sub-step's. Its own mode brackets those
    of its sub-steps, so that a chain in mode ``"read-only"`` holding a forced step, or a
    forced chain holding a read-only step, is refused as ``fold_modes`` says. A step
    without a backend has no mode of its own.

    Raises:
        ValueError: ``"read-only"`` comes after ``"force"`` somewhere in ``step``.

    """
    step = step._resolved()
    own = [] if step.infra is None else [step.infra.mode]
    subs = [effective_mode(sub) for sub in step._sub_steps()]
    return fold_modes([*own, *subs, *own], type(step).__name__)
