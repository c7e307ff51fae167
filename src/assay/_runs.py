"""Run specs: one (params, replicate) pair of an experiment, with its canonical run id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._canonical import run_id
from ._space import ParamSpace


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: its parameters, replicate index and run id.

    The run id is a pure function of the params and the replicate (see ``run_id``), so the same
    sweep planned twice, in any process, names its runs identically: that is what resume relies on.

    Example:
        >>> spec = RunSpec.of({"n": 10}, 0)
        >>> spec == RunSpec.of({"n": 10}, 0), len(spec.run_id)
        (True, 20)

    """

    run_id: str
    params: dict[str, Any] = field(hash=False)
    replicate: int

    @classmethod
    def of(cls, params: dict[str, Any], replicate: int) -> RunSpec:
        """Return the spec of ``params`` at ``replicate``, computing its run id."""
        return cls(run_id(params, replicate), params, replicate)


def plan(space: ParamSpace, replicates: int, seed: int) -> list[RunSpec]:
    """Return every run of ``space`` × ``replicates``, all replicates of a point together.

    Args:
        space: the parameter space.
        replicates: number of replicates per parameter dict, at least 1.
        seed: the experiment's root seed (random search draws from it).

    Raises:
        ValueError: ``replicates`` is not a positive int.

    """
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates = {replicates!r}; expected a positive int")
    return [RunSpec.of(p, r) for p in space.expand(seed) for r in range(replicates)]
