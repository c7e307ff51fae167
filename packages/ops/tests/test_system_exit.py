"""SystemExit inside an operation (sys.exit, an argparse error) fails that run only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
from assay_ops import Capture, RunRecord, Runtime, import_operation, operation
from hypothesis import given
from hypothesis import strategies as st


@operation
def exits(params: dict[str, Any], runtime: Runtime, capture: Capture) -> None:
    (runtime.scratch_dir / "work.txt").write_text("temporary")
    capture.metric("loss", 0.5)
    sys.exit(params["code"])


@operation
def parses(params: dict[str, Any], capture: Capture) -> None:
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--epochs", type=int, required=True)
    capture.metric("epochs", parser.parse_args(params["argv"]).epochs)


def test_sys_exit_gives_a_failed_record_naming_systemexit_and_its_code(tmp_path: Path) -> None:
    record = exits.run(params={"code": 3}, runtime=Runtime(scratch_root=tmp_path))
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == "builtins.SystemExit"
    assert "SystemExit" in record.error.message
    assert "code 3" in record.error.message
    assert "'exits'" in record.error.message  # names the operation
    assert "sys.exit(params" in record.error.traceback
    # what was captured before is kept, and the scratch folder is removed
    assert record.metrics == {"loss": [0.5]}
    assert list(tmp_path.iterdir()) == []
    assert RunRecord.from_json(record.to_json()) == record


def test_an_argparse_error_inside_the_operation_fails_the_run_with_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    record = parses.run(params={"argv": ["--epochs", "many"]})
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.type == "builtins.SystemExit"
    assert "code 2" in record.error.message
    assert "invalid int value: 'many'" in capsys.readouterr().err  # argparse's own message
    assert parses.run(params={"argv": ["--epochs", "4"]}).metric("epochs") == 4


@given(code=st.none() | st.integers(min_value=-(2**31), max_value=2**31) | st.text(max_size=20))
def test_every_exit_code_fails_the_run_and_is_named(code: Any) -> None:
    # sys.exit(0) and sys.exit() too: the body did not run to its end, so it is no success.
    record = exits.run(params={"code": code})
    assert record.status == "failed"
    assert record.error is not None
    assert f"code {code!r}" in record.error.message


def test_a_run_after_a_system_exit_runs_normally() -> None:
    exits.run(params={"code": 1})

    @operation
    def fine(capture: Capture) -> None:
        capture.metric("value", 1)

    assert fine.run().status == "success"


def test_keyboard_interrupt_is_still_re_raised_with_a_cancelled_record() -> None:
    @operation
    def stopped(capture: Capture) -> None:
        capture.metric("loss", 0.5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        stopped.run()
    assert caught.value.run_record.status == "cancelled"  # type: ignore[attr-defined]


def test_a_module_exiting_at_import_is_an_import_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "exits_at_import", raising=False)
    with pytest.raises(ImportError, match=r"'exits_at_import' .* exited \(SystemExit: 2\)"):
        import_operation("exits_at_import:train")
