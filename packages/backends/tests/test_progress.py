from __future__ import annotations

import io

import pytest
from assay_backends import _progress as progress_module
from assay_backends._progress import ProgressBar, progress_enabled
from backends_testkit import Terminal


def test_automatic_progress_follows_the_terminal() -> None:
    pytest.importorskip("rich")
    assert progress_enabled(None, Terminal()) is True
    assert progress_enabled(None, io.StringIO()) is False


def test_progress_can_be_forced_on_or_off() -> None:
    assert progress_enabled(False, Terminal()) is False
    pytest.importorskip("rich")
    assert progress_enabled(True, io.StringIO()) is True


def test_progress_setting_must_be_a_bool_or_none() -> None:
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        progress_enabled("yes")  # type: ignore[arg-type]


def test_a_bar_counts_items_and_draws_with_rich() -> None:
    pytest.importorskip("rich")
    terminal = Terminal()
    with ProgressBar(total=4, description="my-step", enabled=True, stream=terminal) as bar:
        bar.advance(1)
        bar.advance(3)
    assert bar.done == 4
    drawn = terminal.getvalue()
    assert "my-step" in drawn
    assert "4/4" in drawn


def test_a_disabled_bar_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressBar(total=2, description="quiet", enabled=False) as bar:
        bar.advance(2)
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
    assert bar.done == 2


def test_forcing_a_bar_without_rich_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"assay-backends\[progress\]"):
        progress_enabled(True)
    assert progress_enabled(None, Terminal()) is False, "no rich: no automatic bar"
