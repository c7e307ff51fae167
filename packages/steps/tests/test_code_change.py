"""A step's cache follows its code: an edit of _run, a helper or a base class never serves
a stale result silently; formatting and comments keep the cache; pins and policies apply."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from assay_ops import fingerprint
from assay_steps import Cached, Chain, CodeChangedError, Func, Step, _code

Writer = Callable[..., ModuleType]


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Writer]:
    """Write source as an importable module (same name on each call with a name); import it."""
    modules = tmp_path / "modules"
    modules.mkdir()
    monkeypatch.syspath_prepend(str(modules))
    names: dict[str, str] = {}

    def write(source: str, name: str = "user_steps") -> ModuleType:
        real = names.setdefault(name, f"{name}_{uuid.uuid4().hex[:8]}")
        (modules / f"{real}.py").write_text(textwrap.dedent(source))
        for known in names.values():  # a fresh process: every user module imported anew
            sys.modules.pop(known, None)
        importlib.invalidate_caches()
        return importlib.import_module(real)

    yield write
    for real in names.values():
        sys.modules.pop(real, None)


STEP = """
from assay_steps import Step

CALLS = []

def helper(x):
    return x * {factor}

class Scale(Step):
    def _run(self, value):
        CALLS.append(value)
        return {body}
"""


def scale(module: ModuleType, folder: Path, policy: str = "error") -> Step:
    step: Step = module.Scale(infra=Cached(folder=folder, on_code_change=policy))
    return step


def test_an_edit_of_run_raises_naming_it_with_file_and_line(
    write_module: Writer, tmp_path: Path
) -> None:
    old = write_module(STEP.format(factor=2, body="value * 2"))
    assert scale(old, tmp_path).run(5) == 10
    new = write_module(STEP.format(factor=2, body="value * 3"))
    with pytest.raises(CodeChangedError) as raised:
        scale(new, tmp_path).run(5)
    message = str(raised.value)
    assert "Scale" in message
    assert "changed" in message
    assert f"{new.__file__}:" in message  # file:line of what changed
    assert "on_code_change='rerun'" in message
    assert new.CALLS == []  # nothing was computed, nothing served


def test_rerun_recomputes_and_keeps_the_old_entries(write_module: Writer, tmp_path: Path) -> None:
    old = write_module(STEP.format(factor=2, body="value * 2"))
    assert scale(old, tmp_path).run(5) == 10
    new = write_module(STEP.format(factor=2, body="value * 3"))
    assert scale(new, tmp_path, "rerun").run(5) == 15
    assert new.CALLS == [5]
    # The new code's entries are served afterwards, with the default policy.
    assert scale(new, tmp_path).run(5) == 15
    assert new.CALLS == [5]
    # The old code's entries are still on disk: going back to it serves them.
    back = write_module(STEP.format(factor=2, body="value * 2"))
    assert scale(back, tmp_path).run(5) == 10
    assert back.CALLS == []


def test_keep_serves_the_old_entries_and_is_remembered(
    write_module: Writer, tmp_path: Path
) -> None:
    old = write_module(STEP.format(factor=2, body="value * 2"))
    assert scale(old, tmp_path).run(5) == 10
    new = write_module(STEP.format(factor=2, body="value * 3"))
    assert scale(new, tmp_path, "keep").run(5) == 10  # the old result, as asked
    assert new.CALLS == []
    again = write_module(STEP.format(factor=2, body="value * 3"))
    assert scale(again, tmp_path).run(5) == 10  # the choice holds for this code
    assert scale(again, tmp_path).run(6) == 18  # new items are computed by the new code
    assert again.CALLS == [6]


@pytest.mark.parametrize(
    "edit",
    ["value * 2  # times two", "(value\n                * 2)"],
)
def test_a_comment_or_formatting_edit_keeps_the_cache(
    write_module: Writer, tmp_path: Path, edit: str
) -> None:
    old = write_module(STEP.format(factor=2, body="value * 2"))
    scale(old, tmp_path).run(5)
    new = write_module(STEP.format(factor=2, body=edit).replace("CALLS = []", "\n\nCALLS = []"))
    assert scale(new, tmp_path).run(5) == 10
    assert new.CALLS == []


def test_a_docstring_edit_keeps_the_cache(write_module: Writer, tmp_path: Path) -> None:
    source = STEP.format(factor=2, body="helper(value)")
    old = write_module(source)
    scale(old, tmp_path).run(5)
    documented = source.replace(
        "def helper(x):\n", 'def helper(x):\n    """Scale x by the factor."""\n'
    )
    new = write_module(documented)
    assert scale(new, tmp_path).run(5) == 10
    assert new.CALLS == []


def test_an_edit_of_a_helper_in_the_same_module_is_seen(
    write_module: Writer, tmp_path: Path
) -> None:
    old = write_module(STEP.format(factor=2, body="helper(value)"))
    assert scale(old, tmp_path).run(5) == 10
    new = write_module(STEP.format(factor=3, body="helper(value)"))
    with pytest.raises(CodeChangedError, match=r"helper \(.*:\d+\)"):
        scale(new, tmp_path).run(5)


def test_an_edit_of_a_helper_in_another_module_is_seen(
    write_module: Writer, tmp_path: Path
) -> None:
    helpers = write_module("def triple(x):\n    return x * 3\n", "user_helpers")
    source = f"""
    from assay_steps import Step
    import {helpers.__name__} as helpers

    class Scale(Step):
        def _run(self, value):
            return helpers.triple(value)
    """
    assert scale(write_module(source), tmp_path).run(2) == 6
    helpers = write_module("def triple(x):\n    return x * 3 + 0\n", "user_helpers")
    with pytest.raises(CodeChangedError, match="triple"):
        scale(write_module(source), tmp_path).run(2)


def test_an_edit_of_a_base_class_is_seen(write_module: Writer, tmp_path: Path) -> None:
    base = """
    from assay_steps import Step

    class Base(Step):
        def offset(self):
            return {offset}

    class Scale(Base):
        def _run(self, value):
            return value + self.offset()
    """
    assert scale(write_module(base.format(offset=1)), tmp_path).run(2) == 3
    with pytest.raises(CodeChangedError, match="Base"):
        scale(write_module(base.format(offset=2)), tmp_path).run(2)


def test_a_pinned_version_serves_entries_until_it_is_bumped(
    write_module: Writer, tmp_path: Path
) -> None:
    pinned = """
    from assay_steps import Step

    CALLS = []

    class Scale(Step):
        code_version = "{version}"

        def _run(self, value):
            CALLS.append(value)
            return value * {factor}
    """
    assert scale(write_module(pinned.format(version="1", factor=2)), tmp_path).run(5) == 10
    edited = write_module(pinned.format(version="1", factor=3))
    assert scale(edited, tmp_path).run(5) == 10  # the pin says the results still hold
    assert edited.CALLS == []
    bumped = write_module(pinned.format(version="2", factor=3))
    assert scale(bumped, tmp_path).run(5) == 15  # a bump is the user's word: recompute
    assert "pinned" in bumped.Scale.code_report()


def test_a_pin_that_cannot_name_a_folder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"code_version='\.\./x'"):

        class Bad(Step):
            code_version = "../x"

            def _run(self, value: int) -> int:
                return value


def test_a_chain_recomputes_later_steps_when_an_earlier_step_changed(
    write_module: Writer, tmp_path: Path
) -> None:
    source = """
    from assay_steps import Step

    class Prepare(Step):
        def _run(self, value):
            return value + {offset}

    class Scale(Step):
        def _run(self, value):
            return value * 10
    """
    old = write_module(source.format(offset=1))
    chain = Chain(steps=[old.Prepare(), old.Scale()], infra=Cached(folder=tmp_path))
    assert chain.run(1) == 20
    new = write_module(source.format(offset=2))
    chain = Chain(
        steps=[new.Prepare(), new.Scale()], infra=Cached(folder=tmp_path, on_code_change="rerun")
    )
    assert chain.run(1) == 30  # Scale's entry, computed from the old Prepare, is not served


def test_a_func_step_follows_its_function(write_module: Writer, tmp_path: Path) -> None:
    old = write_module("def double(x):\n    return 2 * x\n", "user_funcs")
    assert Func(function=old.double, infra=Cached(folder=tmp_path)).run(4) == 8
    new = write_module("def double(x):\n    return 2 * x + 1\n", "user_funcs")
    with pytest.raises(CodeChangedError, match="double"):
        Func(function=new.double, infra=Cached(folder=tmp_path)).run(4)
    assert "double" in Func(function=new.double).code_report()


def test_a_func_of_a_callable_object_is_cached(tmp_path: Path) -> None:
    # A numpy ufunc is neither a function nor a class: its class (library code) is its code.
    step = Func(function=np.sqrt, infra=Cached(folder=tmp_path))
    assert step.run(4.0) == 2.0
    assert "numpy" in step.code_report()


def test_the_code_folder_records_what_the_code_was(write_module: Writer, tmp_path: Path) -> None:
    module = write_module(STEP.format(factor=2, body="helper(value)"))
    step = scale(module, tmp_path)
    step.run(1)
    paths = step.lookup(1).paths
    record = json.loads((paths.entries_folder / "code.json").read_text())
    assert record["version"] == paths.code
    assert any(name.endswith("helper") for name in record["fingerprint"]["functions"])
    assert (tmp_path / ".assay-cache").is_file()  # the marker of a folder assay made


def test_the_code_report_lists_what_is_covered_and_what_is_not(write_module: Writer) -> None:
    module = write_module(
        """
        from assay_steps import Step

        TABLE = {"a": 1}

        def helper(x):
            return x + TABLE["a"]

        class Scale(Step):
            def _run(self, value):
                return helper(value) + getattr(self, "extra", 0)
        """
    )
    report = module.Scale.code_report()
    assert "helper" in report
    assert "TABLE" in report  # global data: not fingerprinted, and said so
    assert "getattr" in report  # a dynamic reference, listed


def test_a_folder_written_by_an_older_encoding_is_said_not_silently_missed(
    tmp_path: Path, write_module: Writer
) -> None:
    module = write_module(STEP.format(factor=2, body="value * 2"))
    old = tmp_path / f"Scale-{'0' * 32}"
    (old / "cache").mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"step_uid": old.name, "steps": []}))
    with pytest.raises(CodeChangedError, match="older version of assay"):
        scale(module, tmp_path).run(1)
    assert scale(module, tmp_path, "rerun").run(1) == 2


def test_a_version_registered_meanwhile_by_another_process_is_not_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two processes of the same code start on a new folder: the other one registers the
    # version between this one's look for its own record and its look for other versions.
    identity = _code.code_identity(((None, fingerprint(scale)),))
    _code.register(tmp_path, identity)
    real = _code._served_by
    calls: list[int] = []

    def not_yet_then_real(folder: Path, code: _code.CodeIdentity) -> str | None:
        calls.append(1)
        return None if len(calls) == 1 else real(folder, code)

    monkeypatch.setattr(_code, "_served_by", not_yet_then_real)
    found = _code.entries_version(tmp_path, identity, "error", "step Scale")
    assert found == (identity.version, True)
    assert len(calls) == 2
