"""assay-scope against hyperparameter 0.5.12: the cost of reading, scoping and auto_param.

Run: ``python bench/scope_vs_hyperparameter.py`` (needs hyperparameter==0.5.12 and rich).
Every figure is measured on this machine in this run. The two libraries are timed in
alternating rounds and the best round of each is kept, so that load from other processes
disturbs both alike; the statements are compiled into timeit's loop (no lambda overhead).

hyperparameter's wheel ships a Rust storage backend, used by default; its pure-Python backend
(``HYPERPARAMETER_BACKEND=PYTHON``) copies the enclosing values into every new scope. Both are
measured, the second in a child process because the backend is chosen at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import timeit
from contextvars import ContextVar
from dataclasses import dataclass

import assay_scope
import hyperparameter
from rich.console import Console
from rich.table import Table

# Many short rounds: on a busy machine, the best of many short rounds finds the windows in
# which the process ran undisturbed.
ROUNDS = 60
OUTER_KEYS = 1000


@dataclass(frozen=True)
class Case:
    """One operation: a statement timed inside a context prepared by ``setup``."""

    name: str
    stmt: str
    number: int
    outer_keys: int = 0
    outer_x: bool = False


CASES = [
    Case("ps.x()", "ps.x()", 2_000),
    Case("ps.x | 1", "ps.x | 1", 2_000),
    Case("param_scope.x | 1", "param_scope.x | 1", 500, outer_x=True),
    Case("with param_scope(x=1): pass  (0 keys outside)", "with param_scope(x=1): pass", 1_000),
    Case(
        f"with param_scope(x=1): pass  ({OUTER_KEYS} keys outside)",
        "with param_scope(x=1): pass",
        300,
        outer_keys=OUTER_KEYS,
    ),
    Case("with ps: pass  (scope built beforehand)", "with ps: pass", 2_000),
    Case("auto_param call f(1)", "f(1)", 2_000),
]


def plain(a: int, b: int = 2) -> int:
    return a + b


class EmptyScope(dict[str, object]):
    """The least a scope written in Python can cost: built by dict's C code, and a ``with``
    calling two Python methods that do nothing (no state saved, none restored)."""

    __slots__ = ()

    def __enter__(self) -> EmptyScope:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


_BARE: ContextVar[object] = ContextVar("bare", default=None)


class BareScope(dict[str, object]):
    """The least a scope safe for asyncio tasks can cost: built by dict's C code, entering sets
    a ContextVar and leaving resets it, nothing else (no nesting, no reads, no checks)."""

    __slots__ = ("token",)

    def __enter__(self) -> BareScope:
        self.token = _BARE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _BARE.reset(self.token)


class BareInitScope:
    """The same, created by a Python ``__init__`` that stores one attribute: the least any
    scope costs that runs Python code when it is created (``param_scope`` must: it takes
    ``"key=value"`` strings and remembers the scope current at creation)."""

    __slots__ = ("token", "values")

    def __init__(self, **values: object) -> None:
        self.values = values

    def __enter__(self) -> BareInitScope:
        self.token = _BARE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _BARE.reset(self.token)


FLOORS = {
    "with EmptyScope(x=1): pass  (empty Python methods)": (
        "with EmptyScope(x=1): pass",
        {"EmptyScope": EmptyScope},
    ),
    "with BareScope(x=1): pass  (a ContextVar set and reset)": (
        "with BareScope(x=1): pass",
        {"BareScope": BareScope},
    ),
    "with BareInitScope(x=1): pass  (the same, and a Python __init__)": (
        "with BareInitScope(x=1): pass",
        {"BareInitScope": BareInitScope},
    ),
    "with lock: pass  (a prebuilt threading.Lock: C methods)": (
        "with lock: pass",
        {"lock": threading.Lock()},
    ),
    "assay-scope: with param_scope(x=1): pass": (
        "with param_scope(x=1): pass",
        {"param_scope": assay_scope.param_scope},
    ),
}


def seconds_per_op(library: object, case: Case) -> float:
    """Time ``case`` once (``case.number`` runs) with ``library``; seconds per operation."""
    param_scope = library.param_scope  # type: ignore[attr-defined]
    outer = {f"k{i}": i for i in range(case.outer_keys)}
    if case.outer_x:
        outer["x"] = 2
    with param_scope(**outer):
        names = {
            "param_scope": param_scope,
            "ps": param_scope(x=1),
            "f": library.auto_param(plain),  # type: ignore[attr-defined]
        }
        return timeit.timeit(case.stmt, number=case.number, globals=names) / case.number


def measure(case: Case) -> tuple[float, float]:
    best = {"hyperparameter": float("inf"), "assay": float("inf")}
    for _ in range(ROUNDS):
        best["hyperparameter"] = min(best["hyperparameter"], seconds_per_op(hyperparameter, case))
        best["assay"] = min(best["assay"], seconds_per_op(assay_scope, case))
    return best["hyperparameter"], best["assay"]


def table(title: str, figures: dict[str, tuple[float, float]], plain_call: float) -> Table:
    result = Table(title=title)
    result.add_column("operation")
    result.add_column("hyperparameter", justify="right")
    result.add_column("assay-scope", justify="right")
    result.add_column("speed-up", justify="right")
    for name, (theirs, ours) in figures.items():
        result.add_row(name, f"{theirs * 1e6:.3f}", f"{ours * 1e6:.3f}", f"{theirs / ours:.1f}×")
    result.add_row("plain call f(1), for reference", "", f"{plain_call * 1e6:.3f}", "")
    return result


def floors() -> Table:
    """What any ``with`` costs in this interpreter, whatever the scope does inside it.

    Timed in the same alternating rounds as assay's own ``with param_scope(x=1)``, inside an
    entered scope as in the tables above, so that the ratios compare like with like.
    """
    best = dict.fromkeys(FLOORS, float("inf"))
    with assay_scope.param_scope(y=2):
        for _ in range(ROUNDS):
            for name, (stmt, names) in FLOORS.items():
                seconds = timeit.timeit(stmt, number=5_000, globals=names) / 5_000
                best[name] = min(best[name], seconds)
    floor = best[next(iter(FLOORS))]
    result = Table(title="The interpreter's floor for `with` (µs per operation)")
    result.add_column("statement")
    result.add_column("µs", justify="right")
    result.add_column("× the first", justify="right")
    for name, seconds in best.items():
        result.add_row(name, f"{seconds * 1e6:.3f}", f"{seconds / floor:.2f}×")
    return result


def python_backend_figures() -> dict[str, tuple[float, float]]:
    """Measure against hyperparameter's pure-Python backend, in a child process."""
    env = {**os.environ, "HYPERPARAMETER_BACKEND": "PYTHON"}
    done = subprocess.run(
        [sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True
    )
    return {name: (theirs, ours) for name, theirs, ours in json.loads(done.stdout)}


def main() -> None:
    if "--json" in sys.argv:
        print(json.dumps([(case.name, *measure(case)) for case in CASES]))
        return
    plain_call = timeit.repeat("f(1)", number=10_000, repeat=ROUNDS, globals={"f": plain})
    plain_call_s = min(plain_call) / 10_000
    rust = {case.name: measure(case) for case in CASES}
    console = Console()
    title = "assay-scope vs hyperparameter 0.5.12{} (µs per operation, best of {} rounds)"
    console.print(table(title.format("", ROUNDS), rust, plain_call_s))
    python = python_backend_figures()
    console.print(table(title.format(", pure-Python backend", ROUNDS), python, plain_call_s))
    console.print(floors())
    print(
        "A 10x speed-up on `with param_scope(x=1)` needs a tenth of hyperparameter's figure; "
        "compare it with the floors: a `with` on an object that does nothing costs that much. "
        "A scope that isolates asyncio tasks sets and resets a ContextVar (BareScope), and one "
        "that runs Python code when it is created pays for a call to __init__ (BareInitScope)."
    )


if __name__ == "__main__":
    main()
