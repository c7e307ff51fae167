"""assay-context against crystallize-ml 0.27: reading a context and recording metrics.

Run with `python bench/context_vs_crystallize.py` in an environment where assay-context,
crystallize-ml==0.27.0 and rich are installed. Targets: `ctx.get(k)` on a 1,000-key context
within 3x of a plain dict `get`; `record()` at most 1 µs per call.
"""

from __future__ import annotations

import timeit
from typing import Any

from assay_context import FrozenContext
from crystallize.utils.context import FrozenContext as CrystallizeContext
from rich.console import Console
from rich.table import Table

KEYS = 1_000
NUMBER = 100_000
REPEAT = 5


def best_ns(stmt: str, env: dict[str, Any], number: int = NUMBER) -> float:
    """Best per-call time of `stmt` in nanoseconds over REPEAT runs of `number` calls."""
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=REPEAT)) / number * 1e9


def main() -> None:
    initial = {f"key{i}": float(i) for i in range(KEYS)}
    initial["config"] = {"layers": [64, 64], "optimizer": {"name": "adam", "lr": 1e-3}}
    plain = dict(initial)
    ours = FrozenContext(initial)
    theirs = CrystallizeContext(initial)
    tags = {"epoch": 3, "split": "val"}
    env = {"ours": ours, "theirs": theirs, "plain": plain, "tags": tags}

    rows = [
        (
            "get(k), 1,000 keys, float value",
            best_ns('ours.get("key500")', env),
            best_ns('theirs.get("key500")', env),
            best_ns('plain.get("key500")', env),
        ),
        (
            "ctx\\[k], nested dict value",
            best_ns('ours["config"]', env),
            best_ns('theirs["config"]', env, number=NUMBER // 10),
            best_ns('plain["config"]', env),
        ),
        (
            "record(name, value)",
            best_ns('ours.record("loss", 0.5)', env),
            best_ns('theirs.record("loss", 0.5)', env),
            None,
        ),
        (
            "record(name, value, tags)",
            best_ns('ours.record("acc", 0.5, tags=tags)', env),
            best_ns('theirs.record("acc", 0.5, tags=tags)', env),
            None,
        ),
    ]

    table = Table(title=f"assay-context vs crystallize-ml 0.27 (ns per call, best of {REPEAT})")
    table.add_column("operation")
    table.add_column("assay", justify="right")
    table.add_column("crystallize", justify="right")
    table.add_column("crystallize / assay", justify="right")
    table.add_column("dict", justify="right")
    table.add_column("assay / dict", justify="right")
    for name, a, c, d in rows:
        table.add_row(
            name,
            f"{a:,.0f}",
            f"{c:,.0f}",
            f"{c / a:.1f}x",
            "" if d is None else f"{d:,.0f}",
            "" if d is None else f"{a / d:.1f}x",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
