"""@operation and OperationWrapper: injection, validation, code hash, ref, import, pickling."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from assay_context import FrozenContext
from assay_ops import (
    INJECTABLE,
    Capture,
    OperationWrapper,
    Runtime,
    SeedBundle,
    import_operation,
    operation,
)
from assay_scope import auto_param

ModuleMaker = Callable[[str, str], ModuleType]


def test_the_three_decorator_forms_give_a_wrapper_with_a_name() -> None:
    @operation
    def plain(params: dict[str, Any]) -> None: ...

    @operation()
    def called(params: dict[str, Any]) -> None: ...

    @operation(name="custom")
    def named(params: dict[str, Any]) -> None: ...

    assert all(isinstance(op, OperationWrapper) for op in (plain, called, named))
    assert (plain.name, called.name, named.name) == ("plain", "called", "custom")
    assert OperationWrapper(lambda: None, name="anon").name == "anon"
    assert getattr(plain, "__name__", None) == "plain"  # functools.update_wrapper metadata
    assert getattr(plain, "__wrapped__", None) is plain.func


@pytest.mark.parametrize(
    "asked",
    [
        subset
        for size in range(len(INJECTABLE) + 1)
        for combination in itertools.combinations(INJECTABLE, size)
        for subset in {combination, tuple(reversed(combination))}
    ],
)
def test_only_the_values_the_signature_names_are_injected(asked: tuple[str, ...]) -> None:
    seen: dict[str, Any] = {}
    namespace: dict[str, Any] = {"seen": seen}
    signature = ", ".join(asked)
    body = "; ".join(f"seen[{name!r}] = {name}" for name in asked) or "pass"
    exec(f"def op({signature}):\n    {body}\n", namespace)  # any subset, any order
    wrapper = OperationWrapper(namespace["op"])
    seeds, runtime, capture = SeedBundle(3), Runtime(), Capture()
    record = wrapper.run(FrozenContext({"k": 1}), {"x": 1}, seeds, runtime, capture)
    assert record.status == "success", record.error
    assert set(seen) == set(asked)
    assert wrapper.parameters == asked
    if "params" in seen:
        assert seen["params"] == {"x": 1}
    if "seeds" in seen:
        assert seen["seeds"] is seeds
    if "runtime" in seen:
        assert seen["runtime"] is runtime
    if "capture" in seen:
        assert seen["capture"] is capture
    if "context" in seen:
        assert seen["context"]["k"] == 1


def test_call_is_run() -> None:
    @operation
    def op(params: dict[str, Any], capture: Capture) -> None:
        capture.metric("twice", params["x"] * 2)

    assert op(params={"x": 4}).metric("twice") == 8
    assert op(None, {"x": 5}, None, None, None).metric("twice") == 10


def test_unknown_or_variadic_parameters_fail_at_decoration_time() -> None:
    with pytest.raises(ValueError, match=r"'op'.*parameter 'config' cannot be injected.*context"):

        @operation
        def op(params: dict[str, Any], config: Any) -> None: ...

    with pytest.raises(ValueError, match=r"\*\*kwargs: ask for the values by name"):
        operation(lambda **kwargs: None)
    with pytest.raises(ValueError, match=r"\*args"):
        operation(lambda *args: None)
    with pytest.raises(ValueError, match="'params' is positional-only"):
        exec("def op(params, /): pass\noperation(op)", {"operation": operation})
    with pytest.raises(TypeError, match="not callable"):
        OperationWrapper(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name=''"):
        OperationWrapper(lambda: None, name="")


def test_params_are_visible_as_a_param_scope_inside_the_run() -> None:
    @auto_param("model")
    def build(width: int = 8, depth: int = 2) -> tuple[int, int]:
        return width, depth

    @operation
    def op(capture: Capture) -> None:
        width, depth = build()  # no plumbing: the scope carries the run's params
        capture.metric("width", width)
        capture.metric("depth", depth)

    record = op.run(params={"model.width": 64})
    assert (record.metric("width"), record.metric("depth")) == (64, 2)
    assert build() == (8, 2)  # and the scope ends with the run


CODE = '''
from assay_ops import operation

@operation
def op(params, capture):
    """Square x."""
    # the important bit
    capture.metric("y", params["x"] ** 2)
'''

SAME_CODE_OTHER_LOOK = '''
from assay_ops import operation

@operation(name = "renamed")
def op(params,
       capture):
    """A completely different docstring,
    over two lines."""

    capture.metric( "y",  params[ "x" ]**2 )   # a new comment
'''

OTHER_CODE = '''
from assay_ops import operation

@operation
def op(params, capture):
    """Square x."""
    # the important bit
    capture.metric("y", params["x"] ** 3)
'''


def test_code_hash_ignores_comments_docstrings_and_formatting(make_module: ModuleMaker) -> None:
    first = make_module("hash_a", CODE).op
    same = make_module("hash_b", SAME_CODE_OTHER_LOOK).op
    other = make_module("hash_c", OTHER_CODE).op
    assert len(first.code_hash) == 16
    assert first.code_hash == same.code_hash
    assert first.code_hash != other.code_hash
    assert first.run(params={"x": 2}).code_hash == first.code_hash


def test_code_hash_is_empty_without_source() -> None:
    namespace: dict[str, Any] = {}
    exec("def op(params):\n    pass\n", namespace)
    assert OperationWrapper(namespace["op"]).code_hash == ""


def test_ref_and_import_operation_rebuild_the_operation(make_module: ModuleMaker) -> None:
    module = make_module("ops_for_ref", CODE + "\nclass Holder:\n    inner = op\n")
    assert module.op.ref == "ops_for_ref:op"
    assert import_operation("ops_for_ref:op") is module.op
    assert import_operation("ops_for_ref:Holder.inner") is module.op


def test_import_operation_errors() -> None:
    with pytest.raises(ValueError, match=r"'no_colon_here'.*'module:qualname'"):
        import_operation("no_colon_here")
    with pytest.raises(ValueError, match="non-empty"):
        import_operation("module:")
    with pytest.raises(ImportError):
        import_operation("assay_ops_no_such_module_xyz:op")
    with pytest.raises(AttributeError, match="'assay_ops' has no attribute 'nothing'"):
        import_operation("assay_ops:nothing")
    with pytest.raises(TypeError, match=r"names a function.*@operation"):
        import_operation("assay_ops:import_operation")


def test_operations_pickle_by_reference(make_module: ModuleMaker) -> None:
    module = make_module("ops_for_pickle", CODE)
    data = pickle.dumps(module.op)
    assert b"ops_for_pickle:op" in data
    assert pickle.loads(data) is module.op


def test_repr_names_the_operation() -> None:
    assert "estimate" in repr(OperationWrapper(lambda: None, name="estimate"))


def test_wrong_run_arguments_are_refused_before_anything_runs() -> None:
    @operation
    def op(params: dict[str, Any]) -> None: ...

    with pytest.raises(TypeError, match="seeds=42 of type int: expected a SeedBundle or None"):
        op.run(seeds=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="runtime='x' of type str: expected a Runtime"):
        op.run(runtime="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"capture=.*expected a Capture"):
        op.run(capture=[])  # type: ignore[arg-type]


def test_coroutine_functions_are_refused_at_decoration_time() -> None:
    async def op(params: dict[str, Any]) -> None: ...

    with pytest.raises(TypeError, match=r"'op'.*coroutine function"):
        operation(op)


def test_generator_functions_are_refused_at_decoration_time() -> None:
    def op(capture: Capture) -> Any:
        capture.metric("loss", 0.5)
        yield

    with pytest.raises(TypeError, match=r"'op'.*generator function"):
        operation(op)


def test_async_generator_functions_are_refused_at_decoration_time() -> None:
    async def op(params: dict[str, Any]) -> Any:
        yield params

    with pytest.raises(TypeError, match=r"'op'.*generator function"):
        operation(op)
