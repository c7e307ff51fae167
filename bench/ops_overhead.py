"""Overhead of OperationWrapper.run over a plain function call.

A run builds the seed bundle (canonical params digest), a capture, a runtime, calls the
function inside ``param_scope(**params)`` and assembles the RunRecord with provenance. The
budget is 50 µs per run for a trivial operation.

Run: ``python bench/ops_overhead.py``
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import numpy as np
from assay_ops import Capture, SeedBundle, operation
from rich.console import Console
from rich.table import Table

BUDGET_US = 50.0
PARAMS = {"lr": 0.01, "layers": [64, 64], "name": "mlp"}


def trivial(params: dict[str, Any], capture: Any) -> None:
    capture.metric("lr", params["lr"])


def drawing(params: dict[str, Any], seeds: Any, capture: Any) -> None:
    capture.metric("draw", seeds.numpy().random())


class _PlainCapture:
    """A list-backed stand-in, so the plain call does the same work without assay."""

    def __init__(self) -> None:
        self.values: list[tuple[str, Any]] = []

    def metric(self, name: str, value: Any) -> None:
        self.values.append((name, value))


class _PlainSeeds:
    def numpy(self) -> np.random.Generator:
        return np.random.default_rng(0)


def per_call_us(func: Callable[[], Any], number: int) -> float:
    """Best per-call time over many short samples: the least disturbed by other processes."""
    func()  # warm caches (provenance, code hash)
    return min(timeit.repeat(func, number=number, repeat=30)) / number * 1e6


def main() -> None:
    trivial_op, drawing_op = operation(trivial), operation(drawing)
    plain_capture, plain_seeds = _PlainCapture(), _PlainSeeds()
    seeds = SeedBundle(params=PARAMS)
    # (case, plain call, wrapped call, calls per timing, whether the 50 µs budget applies)
    cases = [
        (
            "trivial operation",
            lambda: trivial(PARAMS, plain_capture),
            lambda: trivial_op.run(params=PARAMS),
            2_000,
            True,
        ),
        (
            "trivial, capture given",
            lambda: trivial(PARAMS, plain_capture),
            lambda: trivial_op.run(params=PARAMS, seeds=seeds, capture=Capture()),
            2_000,
            True,
        ),
        (
            "one numpy draw",
            lambda: drawing(PARAMS, plain_seeds, plain_capture),
            lambda: drawing_op.run(params=PARAMS),
            500,
            False,  # includes building a numpy SeedSequence and PCG64 for the draw
        ),
    ]
    table = Table(title="assay_ops: OperationWrapper.run vs a plain function call")
    for column in ("case", "plain call (µs)", "op.run (µs)", "overhead (µs)", "ratio", "budget"):
        table.add_column(column, justify="right" if column != "case" else "left")
    for name, plain, wrapped, number, budgeted in cases:
        plain_us = per_call_us(plain, number)
        run_us = per_call_us(wrapped, number)
        overhead = run_us - plain_us
        verdict = "ok" if overhead <= BUDGET_US else "OVER"
        budget = f"{verdict} (≤ {BUDGET_US:.0f})" if budgeted else "—"
        table.add_row(
            name,
            f"{plain_us:.2f}",
            f"{run_us:.2f}",
            f"{overhead:.2f}",
            f"{run_us / plain_us:.0f}×",
            budget,
        )
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
