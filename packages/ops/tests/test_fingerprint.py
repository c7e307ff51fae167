"""Transitive code fingerprints: every edit of the user's code that can change results changes
the digest; comments, docstrings and formatting do not; library code stops the walk; what
cannot be followed is listed."""

from __future__ import annotations

import ast
import gc
import json
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import assay_ops._fingerprint as fingerprint_module
import pytest
from assay_ops import (
    CodeFingerprint,
    OperationWrapper,
    Unresolved,
    fingerprint,
    operation,
)
from assay_ops._usercode import is_user_module

from .conftest import ModuleMaker


@pytest.fixture(autouse=True)
def _fresh_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module rewritten within the same second with the same size would be imported from a
    # stale .pyc: the tests edit modules in place, so none is written.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


def digest(*roots: Any) -> str:
    return fingerprint(*roots).digest


# ---------------------------------------------------------------- what changes the digest

OPS = """
import fp_helpers
from fp_helpers import shift

FACTOR = 3


def local_helper(x):
    return x + 1


def root(x):
    return local_helper(x) * FACTOR + shift(x) + fp_helpers.scale(x)
"""

HELPERS = """
def shift(x):
    return x - 1


def scale(x):
    return x * 2
"""


def _ops(make_module: ModuleMaker, ops: str = OPS, helpers: str = HELPERS) -> Any:
    make_module("fp_helpers", helpers)
    return make_module("fp_ops", ops)


def test_editing_the_root_changes_the_digest(make_module: ModuleMaker) -> None:
    before = digest(_ops(make_module).root)
    after = digest(_ops(make_module, OPS.replace("* FACTOR +", "* FACTOR -")).root)
    assert len(before) == 32
    assert before != after


def test_editing_a_helper_of_the_same_module_changes_the_digest(make_module: ModuleMaker) -> None:
    before = digest(_ops(make_module).root)
    after = digest(_ops(make_module, OPS.replace("return x + 1", "return x + 2")).root)
    assert before != after


@pytest.mark.parametrize(
    ("edited", "how"),
    [("return x - 1", "from fp_helpers import shift"), ("return x * 2", "fp_helpers.scale(x)")],
)
def test_editing_a_helper_in_another_module_changes_the_digest(
    make_module: ModuleMaker, edited: str, how: str
) -> None:
    module = _ops(make_module)
    before = fingerprint(module.root)
    assert {"fp_helpers.shift", "fp_helpers.scale"} <= set(before.functions)
    module = _ops(make_module, helpers=HELPERS.replace(edited, edited + " + 100"))
    after = fingerprint(module.root)
    assert before.digest != after.digest, how
    assert len([line for line in after.changes(before) if line.startswith("changed:")]) == 1


def test_a_module_constant_the_code_reads_counts_by_value(make_module: ModuleMaker) -> None:
    module = _ops(make_module)
    before = fingerprint(module.root)
    assert before.constants == {"fp_ops.FACTOR": "int:3"}
    after = fingerprint(_ops(make_module, OPS.replace("FACTOR = 3", "FACTOR = 3.0")).root)
    assert after.constants == {"fp_ops.FACTOR": "float:3.0"}  # type-tagged: 3 != 3.0
    assert before.digest != after.digest
    assert after.changes(before) == ["changed: fp_ops.FACTOR (constant int:3 -> float:3.0)"]


def test_a_constant_reassigned_at_run_time_gives_a_new_fingerprint(
    make_module: ModuleMaker,
) -> None:
    module = _ops(make_module)
    before = fingerprint(module.root)
    module.FACTOR = 4  # the memo checks that every name it resolved still binds the same
    after = fingerprint(module.root)
    assert after.constants == {"fp_ops.FACTOR": "int:4"}
    assert after.digest != before.digest


CLASSES = """
class Base:
    def prepare(self, x):
        return x + 1


class Model(Base):
    offset = 2

    def _run(self, x):
        return self.finish(self.prepare(x))

    def finish(self, y):
        return y + self.offset
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("return x + 1", "return x + 10"),  # a base class's method
        ("return y + self.offset", "return y - self.offset"),  # a method reached through self
        ("offset = 2", "offset = 3"),  # a class attribute
    ],
)
def test_base_classes_methods_through_self_and_class_attributes_count(
    make_module: ModuleMaker, old: str, new: str
) -> None:
    module = make_module("fp_classes", CLASSES)
    before, whole = fingerprint(module.Model._run), fingerprint(module.Model)
    assert {"fp_classes.Model", "fp_classes.Base", "fp_classes.Model._run"} <= set(before.functions)
    assert set(whole.functions) == {"fp_classes.Model", "fp_classes.Base"}
    module = make_module("fp_classes", CLASSES.replace(old, new))
    assert fingerprint(module.Model._run).digest != before.digest
    assert fingerprint(module.Model).digest != whole.digest


CLOSURES = """
def helper(x):
    return x + 1


def make(fn, k):
    def inner(x):
        return fn(x) * k
    return inner


root = make(helper, 3)
"""


@pytest.mark.parametrize(
    ("old", "new"), [("return x + 1", "return x + 2"), ("make(helper, 3)", "make(helper, 4)")]
)
def test_closures_holding_functions_and_constants_count(
    make_module: ModuleMaker, old: str, new: str
) -> None:
    module = make_module("fp_closures", CLOSURES)
    before = fingerprint(module.root)
    assert "fp_closures.helper" in before.functions  # reached only through the closure cell
    edited = make_module("fp_closures", CLOSURES.replace(old, new))
    assert fingerprint(edited.root).digest != before.digest


def test_an_import_inside_the_body_is_followed(make_module: ModuleMaker) -> None:
    source = """
    def root(x):
        from fp_inner_helpers import shift
        import fp_inner_helpers as helpers

        return shift(x) + helpers.scale(x)
    """
    make_module("fp_inner_helpers", HELPERS)
    module = make_module("fp_inner", source)
    before = fingerprint(module.root)
    assert {"fp_inner_helpers.shift", "fp_inner_helpers.scale"} <= set(before.functions)
    for edited in ("return x - 1", "return x * 2"):
        make_module("fp_inner_helpers", HELPERS.replace(edited, edited + " + 1"))
        module = make_module("fp_inner", source)
        assert fingerprint(module.root).digest != before.digest


def test_a_decorator_of_a_helper_counts_the_root_s_own_do_not(make_module: ModuleMaker) -> None:
    source = """
    import functools

    from assay_ops import operation


    def traced(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)
        return wrapper


    @traced
    def helper(x):
        return x + 1


    @operation(name="first")
    def root(params):
        return {"y": helper(params["x"])}
    """
    module = make_module("fp_decorated", source)
    before = fingerprint(module.root)
    assert {"fp_decorated.helper", "fp_decorated.traced.<locals>.wrapper"} <= set(before.functions)
    assert "fp_decorated.traced" in before.functions  # the decorator of a helper
    edited = source.replace("return fn(*args)", "return 2 * fn(*args)")
    assert fingerprint(make_module("fp_decorated", edited).root).digest != before.digest
    # the root's own decorator is not code it runs
    renamed = make_module("fp_decorated", source.replace('@operation(name="first")', "@operation"))
    assert fingerprint(renamed.root).digest == before.digest


def test_dispatch_tables_lambdas_and_generated_methods(make_module: ModuleMaker) -> None:
    source = """
    import dataclasses


    def add(x):
        return x + 1


    def mul(x):
        return x * 2


    OPS = {"add": add, "mul": mul}
    PAIR = (lambda a: a + 1, lambda b: b * 2)


    @dataclasses.dataclass
    class Config:
        width: int = 3


    def root(name, x):
        return OPS[name](Config().width) + PAIR[0](x)
    """
    fp = fingerprint(make_module("fp_tables", source).root)
    assert {"fp_tables.add", "fp_tables.mul", "fp_tables.Config"} <= set(fp.functions)
    # two lambdas of one line told apart; the dataclass's generated methods are its definition
    assert [item.basis for item in fp.functions.values()] == ["source"] * len(fp.functions)
    assert len(fp.functions) == 6
    assert {
        (u.name, "functions and classes in it are followed" in u.reason) for u in fp.unresolved
    } == {
        ("OPS", True),
        ("PAIR", True),
    }
    edited = make_module("fp_tables", source.replace("b * 2", "b * 3"))
    assert digest(edited.root) != fp.digest


# ---------------------------------------------------------------- what does not


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("return x - 1", "return x - 1  # one less"),  # comment
        lambda s: s.replace("def shift(x):", 'def shift(x):\n    """Shift x."""'),  # docstring
        lambda s: "\n\n\n" + s.replace("\n\n", "\n\n\n\n"),  # blank lines (positions)
        lambda s: s.replace("return x * 2", "return (x *\n            2)"),  # formatting
    ],
    ids=["comment", "docstring", "blank lines", "formatting"],
)
def test_comments_docstrings_blank_lines_and_formatting_do_not_count(
    make_module: ModuleMaker, edit: Any
) -> None:
    before = digest(_ops(make_module).root)
    ops = OPS.replace("def local_helper(x):", 'def local_helper(x):\n    "Doc."\n    # why')
    assert digest(_ops(make_module, edit(ops), edit(HELPERS)).root) == before


def test_a_cycle_terminates_and_covers_both_functions(make_module: ModuleMaker) -> None:
    source = """
    def a(n):
        return b(n - 1) if n else 0


    def b(n):
        return a(n - 1) if n else 1
    """
    module = make_module("fp_cycle", source)
    assert set(fingerprint(module.a).functions) == {"fp_cycle.a", "fp_cycle.b"}
    edited = make_module("fp_cycle", source.replace("else 1", "else 2"))
    assert digest(edited.a) != digest(module.a)


def test_library_code_is_not_walked_into(make_module: ModuleMaker) -> None:
    source = """
    import json

    import numpy as np
    from assay_ops import canonical_digest


    def root(x):
        return json.dumps(np.sum(x)) + canonical_digest({"x": 1})
    """
    fp = fingerprint(make_module("fp_library", source).root)
    assert list(fp.functions) == ["fp_library.root"]
    assert fp.unresolved == ()
    library = fingerprint(json.dumps)  # a library root counts by its name only
    assert library.functions["json.dumps"].basis == "name"
    assert set(library.functions) == {"json.dumps"}


def test_is_user_module_tells_library_code_from_the_user_s(make_module: ModuleMaker) -> None:
    assert not is_user_module("json")
    assert not is_user_module("numpy")  # site-packages
    assert not is_user_module("assay_ops")  # assay's own
    assert not is_user_module("builtins")
    assert is_user_module(make_module("fp_mine", "X = 1\n"))  # a module of a project folder


# ---------------------------------------------------------------- what cannot be followed

UNRESOLVED = """
import fp_unresolved_helpers

TABLE = {"a": 1}
COUNT = 0


def root(x):
    global COUNT
    COUNT += 1
    return TABLE["a"] + getattr(x, "real") + not_defined + fp_unresolved_helpers.missing(x)
"""


def test_unresolved_references_are_listed_and_reported(make_module: ModuleMaker) -> None:
    make_module("fp_unresolved_helpers", HELPERS)
    fp = fingerprint(make_module("fp_unresolved", UNRESOLVED).root)
    found = {(u.where, u.name): u.reason for u in fp.unresolved}
    assert set(found) == {
        ("fp_unresolved.root", "TABLE"),
        ("fp_unresolved.root", "getattr"),
        ("fp_unresolved.root", "not_defined"),
        ("fp_unresolved.root", "fp_unresolved_helpers.missing"),
        ("fp_unresolved.root", "COUNT"),
    }
    assert "dict" in found[("fp_unresolved.root", "TABLE")]
    assert "dynamic" in found[("fp_unresolved.root", "getattr")]
    assert "undefined" in found[("fp_unresolved.root", "not_defined")]
    assert "global state" in found[("fp_unresolved.root", "COUNT")]
    assert fp.constants == {}  # COUNT changes as the code runs: it is state, not a constant
    report = fp.report()
    for unresolved in fp.unresolved:
        assert str(unresolved) in report
    assert "no unresolved references" not in report


def test_a_function_without_source_has_its_bytecode_hashed_and_says_so() -> None:
    namespace: dict[str, Any] = {"__name__": "fp_exec"}
    exec("def op(x):\n    return x + 1\n", namespace)
    fp = fingerprint(namespace["op"])
    assert fp.functions["fp_exec.op"].basis == "bytecode"
    assert fp.unresolved == (Unresolved("fp_exec.op", "op", "no source, bytecode hashed"),)
    exec("def op(x):\n    return x + 2\n", namespace)
    assert digest(namespace["op"]) != fp.digest


def test_a_root_that_is_no_code_is_refused() -> None:
    with pytest.raises(TypeError, match=r"root 42 of type int: expected a function, method"):
        fingerprint(42)
    with pytest.raises(TypeError, match="at least one"):
        fingerprint()


# ---------------------------------------------------------------- the result


def test_report_lists_every_function_with_file_and_line(make_module: ModuleMaker) -> None:
    module = _ops(make_module)
    report = fingerprint(module.root).report()
    assert f"fp_helpers.shift  {module.fp_helpers.__file__}:2" in report
    assert "fp_ops.FACTOR = int:3" in report
    assert "no unresolved references" in report


def test_changes_name_the_edited_helper_with_file_and_line(make_module: ModuleMaker) -> None:
    module = _ops(make_module)
    before = fingerprint(module.root)
    helpers = HELPERS.replace("return x * 2", "return x * 3") + "\n\ndef extra(x):\n    return x\n"
    module = _ops(make_module, OPS.replace("fp_helpers.scale(x)", "fp_helpers.extra(x)"), helpers)
    file = module.fp_helpers.__file__
    assert fingerprint(module.root).changes(before) == [
        f"added: fp_helpers.extra ({file}:10)",
        f"changed: fp_ops.root ({module.__file__}:12)",
        f"removed: fp_helpers.scale ({file}:6)",
    ]


def test_to_dict_round_trips_through_json(make_module: ModuleMaker) -> None:
    make_module("fp_unresolved_helpers", HELPERS)
    fp = fingerprint(make_module("fp_unresolved", UNRESOLVED).root)
    again = CodeFingerprint.from_dict(json.loads(json.dumps(fp.to_dict())))
    assert again == fp
    assert again.report() == fp.report()
    assert again.changes(fp) == []
    with pytest.raises(ValueError, match="format"):
        CodeFingerprint.from_dict({"digest": "x"})
    with pytest.raises(ValueError, match="functions"):
        CodeFingerprint.from_dict({**fp.to_dict(), "functions": [1]})


def test_another_python_version_never_matches(make_module: ModuleMaker) -> None:
    fp = fingerprint(_ops(make_module).root)
    other = CodeFingerprint.from_dict({**fp.to_dict(), "python": "2.7", "digest": "0" * 32})
    assert fp.changes(other) == [
        f"changed: Python 2.7 -> {sys.version_info[0]}.{sys.version_info[1]} (syntax trees "
        "differ between Python versions)"
    ]
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in fp.report()


def test_fingerprints_are_memoised(
    make_module: ModuleMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = make_module("fp_memo", CLASSES)
    first = fingerprint(module.Model)
    assert fingerprint(module.Model) is first  # per class, not per instance or item

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(ast, "parse", refuse)
    assert fingerprint(module.Model) is first
    fingerprint_module._MEMO.clear()  # computed again: from the per-function caches
    assert fingerprint(module.Model) == first


def test_a_fingerprint_keeps_no_class_or_function_alive(make_module: ModuleMaker) -> None:
    # A notebook's redefined class, or a step class the step registry must see go: the
    # memo and caches must not hold them.
    module = make_module("fp_gone", CLASSES)
    fingerprint(module.Model)
    fingerprint(module.Model._run)
    model, method = weakref.ref(module.Model), weakref.ref(module.Model._run)
    sys.modules.pop("fp_gone")
    del module
    gc.collect()
    assert model() is None
    assert method() is None


def test_code_swapped_in_place_gives_a_new_fingerprint(make_module: ModuleMaker) -> None:
    # What IPython's autoreload does: the edited file is compiled again and the new code is
    # put into the functions and methods that already exist, in the same class objects.
    module = make_module("fp_swap", CLASSES)
    before = fingerprint(module.Model._run)
    edited = textwrap.dedent(CLASSES.replace("return x + 1", "return x + 10"))
    Path(module.__file__).write_text(edited)
    namespace: dict[str, Any] = {"__name__": "fp_swap"}
    exec(compile(edited, module.__file__, "exec"), namespace)
    module.Base.prepare.__code__ = namespace["Base"].prepare.__code__
    after = fingerprint(module.Model._run)
    assert after.changes(before) == [f"changed: fp_swap.Base ({module.__file__}:2)"]


def test_operation_code_hash_is_the_transitive_fingerprint(make_module: ModuleMaker) -> None:
    source = """
    from assay_ops import operation

    import fp_helpers


    @operation
    def op(params, capture):
        capture.metric("y", fp_helpers.scale(params["x"]))
    """
    make_module("fp_helpers", HELPERS)
    op = make_module("fp_op", source).op
    assert isinstance(op, OperationWrapper)
    assert op.code_hash == op.code_fingerprint.digest[:16] == fingerprint(op).digest[:16]
    assert "fp_helpers.scale" in op.code_report()
    assert op.run(params={"x": 2}).code_hash == op.code_hash
    make_module("fp_helpers", HELPERS.replace("x * 2", "x * 4"))
    edited = make_module("fp_op", source).op
    assert edited.code_hash != op.code_hash


def test_operations_of_callable_objects_have_a_code_hash() -> None:
    class Square:
        def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
            return {"y": params["x"] ** 2}

    op = operation(Square(), name="square")
    assert len(op.code_hash) == 16
    assert op.run(params={"x": 3}).metrics == {"y": [9]}
