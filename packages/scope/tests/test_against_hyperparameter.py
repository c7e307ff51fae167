"""The same programs run against hyperparameter 0.5 and assay_scope give the same results.

Skipped when hyperparameter is not installed. Programs are generated (nested scopes, reads with
defaults, writes, ``auto_param`` calls) within the behaviour both libraries share; the
deliberate differences (missing keys without a default, refused conversions, a scope object
read inside a scope nested in it, ...) are listed on the moving-over page and left out here.
Each program runs in a thread of its own: both libraries start a new thread from an empty
scope, so no program sees another's values.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import assay_scope
import pytest
from assay_scope import ConversionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

hyperparameter = pytest.importorskip("hyperparameter")

# Each key holds values of one type, and is read with a default of that type (or None), so
# that every read is a conversion both libraries make.
KEYS: dict[str, st.SearchStrategy[Any]] = {
    "a": st.integers(-5, 5),
    "b.c": st.text("xyz", max_size=3),
    "b.d": st.sampled_from([0.5, -1.25, 3.0]),
    "flag": st.booleans(),
    "f.x": st.integers(-5, 5),
    "f.y": st.text("xyz", max_size=3),
    "f.w": st.booleans(),
}
# The same values as text, as "key=value" arguments and command lines give them.
TEXT: dict[type, Callable[[Any], str]] = {
    int: str,
    str: str,
    float: repr,
    bool: lambda v: "yes" if v else "off",
}
DEFAULTS = {"a": 7, "b.c": "dflt", "b.d": 0.1, "flag": False, "f.x": 7, "f.y": "dflt", "f.w": True}


@st.composite
def _values(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=3))
    return {key: draw(KEYS[key]) for key in keys}


_KEY = st.sampled_from(sorted(KEYS))
STEPS = st.one_of(
    st.tuples(st.just("read"), _KEY, st.booleans()),
    st.tuples(st.just("read_class"), _KEY, st.booleans()),
    st.tuples(st.just("write"), st.sampled_from(["attr", "item", "class", "current"]), _KEY),
    st.just(("dict",)),
    st.just(("call_f",)),
    st.tuples(st.just("call_f_kw"), st.integers(-5, 5)),
)


def _block(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(
        st.just("with"),
        st.sampled_from(["kwargs", "strings", "empty"]),
        _values(),
        st.lists(children, min_size=1, max_size=4),
    )


PROGRAMS = st.lists(st.recursive(STEPS, _block, max_leaves=12), min_size=1, max_size=5)


class _Runner:
    """Runs a generated program against one library and logs what each step gave."""

    def __init__(self, lib: ModuleType, values: dict[str, Any]) -> None:
        self.scope = lib.param_scope
        self.values = values  # the value each write uses, drawn once for both libraries
        self.log: list[Any] = []

        @lib.auto_param  # type: ignore[untyped-decorator]
        def f(x: int = 0, y: str = "s", w: bool = False) -> tuple[int, str, bool]:
            return x, y, w

        self.f = f

    def run(self, ops: list[Any], ps: Any) -> None:
        for op in ops:
            self.step(op, ps)

    def step(self, op: tuple[Any, ...], ps: Any) -> None:
        kind = op[0]
        if kind in ("read", "read_class"):
            default = DEFAULTS[op[1]] if op[2] else None
            target = ps if kind == "read" else self.scope
            for part in op[1].split("."):
                target = getattr(target, part)
            self.log.append(("read", op[1], _typed(target(default))))
        elif kind == "write":
            self.write(op[1], op[2], ps)
        elif kind == "dict":
            self.log.append(("dict", sorted((k, _typed(v)) for k, v in dict(ps).items())))
        elif kind == "call_f":
            self.log.append(("f", self.f()))
        elif kind == "call_f_kw":
            self.log.append(("f", self.f(x=op[1])))
        else:
            self.enter(op[1], op[2], op[3])

    def write(self, how: str, key: str, ps: Any) -> None:
        value = self.values[key]
        head, _, tail = key.rpartition(".")
        if how == "item":
            ps[key] = value
            return
        target = {"attr": ps, "class": self.scope, "current": self.scope.current()}[how]
        for part in head.split(".") if head else []:
            target = getattr(target, part)
        setattr(target, tail, value)

    def enter(self, form: str, values: dict[str, Any], body: list[Any]) -> None:
        if form == "strings":
            scope = self.scope(*(f"{k}={TEXT[type(v)](v)}" for k, v in values.items()))
        elif form == "empty":
            scope = self.scope.empty(**values)
        else:
            scope = self.scope(**values)
        with scope as ps:
            self.run(body, ps)
        # What leaving restored. (A scope object read after its block differs: the reference's
        # compiled backend reads it through whichever scope is current.)
        restored = self.scope.current()
        self.log.append(("left", sorted((k, _typed(v)) for k, v in dict(restored).items())))


def _typed(value: Any) -> tuple[str, Any]:
    return type(value).__name__, value


def _in_thread(func: Callable[[], Any]) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(_outcome(func)))
    thread.start()
    thread.join()
    return result[0]


def _outcome(func: Callable[[], Any]) -> Any:
    try:
        return ("ok", func())
    except Exception as error:  # compared by type: both must fail the same way
        return ("error", type(error).__name__)


def _run(lib: ModuleType, program: list[Any], outer: dict[str, Any], values: dict[str, Any]) -> Any:
    def go() -> list[Any]:
        runner = _Runner(lib, values)
        with lib.param_scope(**outer) as ps:
            runner.run(program, ps)
        return runner.log

    return _in_thread(go)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=PROGRAMS, outer=_values(), values=st.fixed_dictionaries(KEYS))
def test_generated_programs_give_the_same_log(
    program: list[Any], outer: dict[str, Any], values: dict[str, Any]
) -> None:
    expected = _run(hyperparameter, program, outer, values)
    assert expected[0] == "ok", expected  # the generator stays within what the reference runs
    assert _run(assay_scope, program, outer, values) == expected


STORED = [0, 1, 3, -2, 3.0, 0.5, True, False, "3", "3.0", "-2", "0.5", "1e3", "yes", "off"]
STORED += ["True", "N", "abc", "", [1, 2], (1,), {1, 2}]
READ_DEFAULTS: list[Any] = [None, "s", 0, 5, 0.5, False, True, [0]]


def test_every_conversion_assay_makes_gives_the_reference_value() -> None:
    # Where assay refuses a conversion (ConversionError), the moving-over page says why; every
    # other stored value and default must read the same, value and type.
    compared = 0
    for stored in STORED:
        for default in READ_DEFAULTS:

            def read(lib: ModuleType, stored: Any = stored, default: Any = default) -> Any:
                with lib.param_scope(k=stored) as ps:
                    return _typed(ps.k(default)), _typed(lib.param_scope.k | default)

            ours = _in_thread(lambda: read(assay_scope))
            if ours == ("error", ConversionError.__name__):
                continue
            theirs = _in_thread(lambda: read(hyperparameter))
            assert ours == theirs, (stored, default)
            compared += 1
    assert compared >= len(STORED) * 3  # None, str and list defaults always convert


def _train(lib: ModuleType) -> Callable[..., Any]:
    @lib.auto_param
    def train(data, epochs=5, lr=0.1, amp=False, name="x"):  # type: ignore[no-untyped-def]
        """Train."""
        return data, epochs, lr, amp, name, lib.param_scope.model.width | 8

    return train  # type: ignore[no-any-return]


COMMAND_LINES = [
    ["d"],
    ["d", "--epochs", "3", "--lr", "0.5", "--name", "y"],
    ["d", "--amp", "true"],
    ["d", "--amp", "off"],
    ["d", "-D", "model.width=16"],
    ["d", "-D", "train.epochs=7", "-D", "train.amp=yes"],
    ["d", "-D", "train.epochs=7", "train.amp=yes"],
    ["d", "-D", "train.lr=0.5", "model.width=4", "--epochs", "2"],
    ["d", "-D", "train.epochs=7", "--epochs", "2"],
    ["d", "--define", "train.lr=0.25"],
    ["-D", "model.width=3", "--", "d"],
    ["d", "--epochs", "2.5"],
    [],
    ["d", "e"],
    ["d", "--unknown", "1"],
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_command_lines_give_the_same_call(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # launch() reads sys.argv in both libraries; a usage error is a SystemExit with status 2.
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])

    def call(lib: ModuleType) -> Any:
        try:
            return lib.launch(_train(lib))
        except SystemExit as error:
            return "exit", error.code

    assert _in_thread(lambda: call(assay_scope)) == _in_thread(lambda: call(hyperparameter))


def test_nan_and_infinity_read_as_float_the_same() -> None:
    def read(lib: ModuleType) -> Any:
        with lib.param_scope("a=nan", "b=-inf") as ps:
            return math.isnan(ps.a(0.5)), ps.b(0.5)

    assert _in_thread(lambda: read(assay_scope)) == _in_thread(lambda: read(hyperparameter))


FROZEN_PROGRAM = """
import json, sys, threading
from {lib} import param_scope as scope

log = []


def in_new_thread(what):
    read = lambda: log.append((what, scope.frozen_test.r(0), scope.frozen_test.s(0)))
    thread = threading.Thread(target=read)
    thread.start()
    thread.join()


made_before = scope(x=1)
with scope(**{{"frozen_test.r": 1}}):
    with scope(**{{"frozen_test.s": 2}}):
        scope.frozen()
        log.append(("inner", scope.frozen_test.r(0), scope.frozen_test.s(0)))
        in_new_thread("thread started in the inner block")
    log.append(("after the inner block", scope.frozen_test.r(0), scope.frozen_test.s(0)))
log.append(("after both blocks", scope.frozen_test.r(0), scope.frozen_test.s(0)))
log.append(("scope made before", made_before.frozen_test.r(0)))
with scope() as ps:
    log.append(("new scope", sorted(ps.storage().storage())))
in_new_thread("thread started after")
print(json.dumps(log))
"""


def test_frozen_reaches_later_threads_and_leaves_the_caller_as_it_was() -> None:
    # In a process of its own: what frozen() publishes stays for the rest of the process.
    def run(lib: str) -> Any:
        code = FROZEN_PROGRAM.format(lib=lib)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    ours = run("assay_scope")
    assert ours == run("hyperparameter")
    assert ours == [
        ["inner", 1, 2],
        ["thread started in the inner block", 1, 2],
        ["after the inner block", 1, 0],
        ["after both blocks", 0, 0],
        ["scope made before", 0],
        ["new scope", []],
        ["thread started after", 1, 2],
    ]
