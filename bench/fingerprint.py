"""Code fingerprints: what it costs to follow a step's code through 20 functions in 2 modules.

A user package is written to a temporary folder: a class whose ``_run`` calls helpers across
two modules (one more method reached through ``self``, module constants read on the way), so
the fingerprint of ``Model._run`` covers 20 functions, methods and classes. Measured:

- first call in a fresh process (every memo empty, the files not read yet);
- cold in-process: every memo and parsed file dropped, best of many;
- recomputed: the fingerprint's memo dropped, the per-function caches kept (what a new
  root sharing the helpers costs);
- memoised: the next call for the same root (checks that every name it resolved still binds
  the same object).

Beside it, joblib.Memory's code check of the same root function: ``get_func_code`` (the
source text of that one function, through ``inspect``) plus a hash of it, cold (linecache
cleared), and the check a ``Memory.cache`` function makes on its next call (the code it
keeps while the function's code object is the same). joblib covers only the function's own
body, so an edited helper goes unnoticed. Ratios above 1 mean assay is faster.

Run: ``python bench/fingerprint.py`` (joblib optional).
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay_ops import _fingerprint, fingerprint
from rich.console import Console
from rich.table import Table

TARGET_MS = 2.0


def write_package(folder: Path) -> str:
    """Write the user package ``benchpkg`` under ``folder``; return the module to import."""
    package = folder / "benchpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    first = ["from . import steps_b\nfrom .steps_b import b_0\n\nSCALE = 3\n"]
    for i in range(8):
        call = f"a_{i + 1}(x)" if i < 7 else "steps_b.b_0(x)"
        first.append(
            f'''

def a_{i}(x):
    """Helper {i}: a loop over a constant."""
    total = 0
    for k in range(3):
        total += k * SCALE + {i}  # weighted
    return {call} + total
'''
        )
    first.append(
        '''

class Model:
    """The step: _run calls helpers of both modules, and a method through self."""

    factor = 2

    def _run(self, x):
        y = a_0(x) + b_0(x)
        return self.post(y) * self.factor

    def post(self, y):
        return [v + 1 for v in (y, y * 2)][0]
'''
    )
    (package / "steps_a.py").write_text("".join(first))
    second = ["import math\n\nOFFSET = 1.5\n"]
    for i in range(10):
        call = f"b_{i + 1}(x)" if i < 9 else "0"
        second.append(
            f'''

def b_{i}(x):
    """Helper {i}: a branch and a library call."""
    if x > {i}:
        x = math.sqrt(abs(x)) + OFFSET
    return {call} + x
'''
        )
    (package / "steps_b.py").write_text("".join(second))
    return "benchpkg.steps_a"


FIRST_CALL = textwrap.dedent(
    """
    import importlib, sys, time
    sys.path.insert(0, sys.argv[1])
    module = importlib.import_module(sys.argv[2])
    from assay_ops import fingerprint
    started = time.perf_counter()
    fp = fingerprint(module.Model._run)
    print((time.perf_counter() - started) * 1e3, len(fp.functions))
    """
)


def first_call_ms(folder: Path, module: str, runs: int = 7) -> float:
    """Median time of the first fingerprint in a fresh process (modules already imported)."""
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_CALL, str(folder), module],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        times.append(float(done.stdout.split()[0]))
    return statistics.median(times)


def clear_all() -> None:
    for memo in (
        _fingerprint._MEMO,
        _fingerprint._FUNCTIONS,
        _fingerprint._CLASSES,
        _fingerprint._SCANS,
        _fingerprint._SOURCES,
    ):
        memo.clear()
    linecache.clearcache()


def best_ms(function: Callable[[], Any], setup: Callable[[], None], repeats: int = 30) -> float:
    """Best time of ``function`` after ``setup``, over ``repeats`` tries."""
    times = []
    for _ in range(repeats):
        setup()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times) * 1e3


def parse_floor_ms(folder: Path) -> float:
    """Best time to read and parse the package's two modules: what any fingerprint over
    syntax trees must do once, before hashing anything (the floor of the cold case)."""
    files = sorted((folder / "benchpkg").glob("steps_*.py"))
    return best_ms(lambda: [ast.parse(path.read_text()) for path in files], linecache.clearcache)


def per_call_us(function: Callable[[], Any], number: int = 20_000) -> float:
    function()
    return min(timeit.repeat(function, number=number, repeat=7)) / number * 1e6


def joblib_figures(func: Callable[..., Any], folder: Path) -> tuple[float, float] | None:
    """(cold ms, memoised µs) of joblib.Memory's code check of ``func``; None without joblib.

    Cold: ``get_func_code`` (the function's own source, through ``inspect``) and a hash of it,
    linecache cleared. Memoised: what a ``Memory.cache`` function checks on its next call
    (its ``func_code_info``, kept while the function's code object is the same).
    """
    try:
        from joblib import Memory
        from joblib.func_inspect import get_func_code
    except ImportError:
        return None

    def check() -> str:
        code, _, _ = get_func_code(func)
        return hashlib.sha256(code.encode()).hexdigest()

    cold = best_ms(check, linecache.clearcache)
    cached = Memory(folder / "joblib", verbose=0).cache(func)
    return cold, per_call_us(lambda: cached.func_code_info)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        module_name = write_package(folder)
        sys.path.insert(0, str(folder))
        sys.dont_write_bytecode = True
        module = __import__(module_name, fromlist=["Model"])
        root = module.Model._run
        fp = fingerprint(root)
        reached = len(fp.functions)
        first = first_call_ms(folder, module_name)
        cold = best_ms(lambda: fingerprint(root), clear_all)
        floor = parse_floor_ms(folder)
        recomputed = best_ms(lambda: fingerprint(root), _fingerprint._MEMO.clear)
        memoised = per_call_us(lambda: fingerprint(root))
        joblib = joblib_figures(root, folder)

    table = Table(title=f"code fingerprint of Model._run: {reached} functions, methods, classes")
    for column in ("case", "assay", "joblib.Memory (1 function)", "ratio"):
        table.add_column(column, justify="left" if column == "case" else "right")
    verdict = "ok" if cold <= TARGET_MS else "OVER"
    rows = [
        ("first call, fresh process", f"{first:.2f} ms", None),
        (f"cold, caches cleared ({verdict}: ≤ {TARGET_MS:.0f} ms)", f"{cold:.2f} ms", "cold"),
        ("floor: read and parse the 2 modules", f"{floor:.2f} ms", None),
        ("recomputed, files parsed", f"{recomputed:.2f} ms", None),
        ("memoised (next call)", f"{memoised:.2f} µs", "warm"),
    ]
    for case, figure, peer in rows:
        if joblib is None or peer is None:
            table.add_row(case, figure, "—", "—")
        elif peer == "cold":
            table.add_row(case, figure, f"{joblib[0]:.2f} ms", f"{joblib[0] / cold:.2f}×")
        else:
            table.add_row(case, figure, f"{joblib[1]:.2f} µs", f"{joblib[1] / memoised:.2f}×")
    console = Console(width=110)
    console.print(table)
    print(f"assay, cold, per function reached: {cold / reached * 1e3:.0f} µs")
    print(
        f"cold / floor = {cold / floor:.1f}: parsing the files is {floor / cold:.0%} of the cold "
        "time; the rest is walking and hashing the 20 syntax trees"
    )
    if joblib is None:
        print("joblib is not installed: assay's figures alone (pip install joblib to compare)")
    else:
        print(
            "joblib hashes the root's own source only: an edit of any of the other "
            f"{reached - 1} goes unnoticed by it"
        )


if __name__ == "__main__":
    main()
