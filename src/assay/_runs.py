"""Run specs: one (params, replicate) pair of an experiment, with its canonical run id.

A sweep's runs form a ``SweepPlan``: a sequence of specs that keeps each parameter dict
once (a grid computes them on demand) and the run ids packed, ten bytes a run, so that a
sweep of a million runs holds about 10 MB in the driver, not a RunSpec object per run. The run
ids are computed when first needed: resuming a complete sweep needs only the plan's digest.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from assay_ops import CANONICAL_VERSION, canonical_bytes, canonical_digest, canonical_hasher

from ._canonical import RUN_ID_LENGTH, run_id
from ._space import Params, ParamSpace

#: Bytes of a packed run id (two hex digits a byte).
_ID_BYTES = RUN_ID_LENGTH // 2


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of an experiment: its parameters, replicate index and run id.

    The run id is a pure function of the params and the replicate (see ``run_id``), so the same
    sweep planned twice, in any process, names its runs identically: that is what resume relies on.

    Examples:
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


class SweepPlan(Sequence[RunSpec]):
    """Every run of a sweep, in planning order: all replicates of a point together.

    Specs are made when asked for (indexing, iteration); the plan itself keeps the points and
    the packed run ids only (computed when first needed). ``plan[i]`` is the spec of point
    ``i // replicates`` at replicate ``i % replicates``.

    Examples:
        >>> from assay._space import grid
        >>> runs = plan(grid(n=[10, 100]), replicates=2, seed=0)
        >>> len(runs), runs[3].params, runs[3].replicate, runs[3] == RunSpec.of({"n": 100}, 1)
        (4, {'n': 100}, 1, True)

    """

    def __init__(self, points: Sequence[Params], replicates: int) -> None:
        self.points = points
        self.replicates = replicates
        self._ids: bytearray | None = None
        self._digest: str | None = None

    def __len__(self) -> int:
        return len(self.points) * self.replicates

    @property
    def _packed(self) -> bytearray:
        """The run ids, packed; computed on first use."""
        if self._ids is None:
            self._ids, self._digest = _packed_run_ids(self.points, self.replicates)
        return self._ids

    @overload
    def __getitem__(self, index: int) -> RunSpec: ...

    @overload
    def __getitem__(self, index: slice) -> list[RunSpec]: ...

    def __getitem__(self, index: int | slice) -> RunSpec | list[RunSpec]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = _position(index, len(self))
        point, replicate = divmod(position, self.replicates)
        return RunSpec(self.run_id(position), self.points[point], replicate)

    def __iter__(self) -> Iterator[RunSpec]:
        ids, size, position = self._packed, _ID_BYTES, 0
        for params in self.points:
            for replicate in range(self.replicates):
                yield RunSpec(ids[position : position + size].hex(), params, replicate)
                position += size

    def __repr__(self) -> str:
        return f"SweepPlan({len(self.points)} points × {self.replicates} replicates)"

    def run_id(self, position: int) -> str:
        """Return the run id of the run at ``position`` without making its spec."""
        start = _position(position, len(self)) * _ID_BYTES
        return self._packed[start : start + _ID_BYTES].hex()

    def run_ids(self) -> Iterator[str]:
        """Yield the run ids in planning order."""
        ids, step = self._packed, _ID_BYTES * 65536
        for start in range(0, len(ids), step):  # hex digits made a slice at a time
            text = ids[start : start + step].hex()
            yield from (text[i : i + RUN_ID_LENGTH] for i in range(0, len(text), RUN_ID_LENGTH))

    @property
    def digest(self) -> str:
        """A digest of the plan: its points in order and its replicates.

        Run ids are a pure function of both, so two plans with the same digest name the same
        runs in the same order. It costs an encoding per point, not a hash per run.
        """
        if self._digest is None:
            self._digest = _digest(self.points, self.replicates)
        return self._digest


def _position(index: int, length: int) -> int:
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise IndexError(f"run index {index} out of range for a sweep of {length} runs")
    return position


def plan(space: ParamSpace, replicates: int, seed: int) -> SweepPlan:
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
    return SweepPlan(space.points(seed), replicates)


# ---------------------------------------------------------------- run ids in bulk

# A run id hashes the canonical encoding of {"params": params, "replicate": replicate}: a
# mapping is its tag, its length, then its (key, value) pairs sorted by their encoding. The
# key "params" sorts before "replicate" (their encodings differ first at the length of the
# key), so the encoding is a part that depends on the params alone, then one that depends on
# the replicate alone: the first is hashed once per point, and each replicate continues from
# a copy of that hash.
_PARAMS_PART = b"d" + (2).to_bytes(8, "big") + canonical_bytes("params")
_REPLICATE_KEY = canonical_bytes("replicate")


def _packed_run_ids(points: Sequence[Params], replicates: int) -> tuple[bytearray, str]:
    """Return the run ids of every (point, replicate), packed, and the plan's digest."""
    if not _split_encoding_holds():
        ids = "".join(run_id(p, r) for p in points for r in range(replicates))
        return bytearray.fromhex(ids), _digest(points, replicates)
    tails = [_REPLICATE_KEY + canonical_bytes(r) for r in range(replicates)]
    size = _ID_BYTES
    out = bytearray()

    def encoded_points() -> Iterator[bytes]:  # the digest reads each point's encoding once
        for params in points:
            encoded = canonical_bytes(params)
            head = canonical_hasher()
            head.update(_PARAMS_PART + encoded)
            for tail in tails:
                hasher = head.copy()
                hasher.update(tail)
                out.extend(hasher.digest()[:size])
            yield encoded

    digest = _plan_digest(replicates, encoded_points())
    return out, digest  # not copied into bytes: a million runs are 10 MB


def _digest(points: Sequence[Params], replicates: int) -> str:
    """Return the digest of a plan (see ``SweepPlan.digest``)."""
    return _plan_digest(replicates, (canonical_bytes(params) for params in points))


def _plan_digest(replicates: int, encoded_points: Iterable[bytes]) -> str:
    """Return the digest of a plan from its points' encodings (see ``SweepPlan.digest``)."""
    # what names the runs goes first: the encoding's version and the run ids' length
    header = b"assay.sweep.v1\x00%d\x00%d\x00%d\x00" % (
        CANONICAL_VERSION,
        RUN_ID_LENGTH,
        replicates,
    )
    digest = hashlib.sha256(header)
    for encoded in encoded_points:
        digest.update(encoded)  # self-delimiting: different points never hash alike
    return digest.hexdigest()


@functools.cache
def _split_encoding_holds() -> bool:
    """Whether hashing the encoding in two parts gives ``run_id``'s digest (encoding v1 does).

    Checked on a probe, so that another version of the encoding falls back to ``run_id``
    itself rather than naming runs differently.
    """
    params, replicate = {"n": [1, 2.5], "b": "x"}, 3
    split = canonical_hasher()
    split.update(_PARAMS_PART + canonical_bytes(params))
    split.update(_REPLICATE_KEY + canonical_bytes(replicate))
    whole = canonical_digest({"params": params, "replicate": replicate})
    return split.hexdigest() == whole
