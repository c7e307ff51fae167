"""``import assay`` loads the layers on first use, so that a command starts fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

import assay

HEAVY = ("numpy", "pydantic", "submitit", "assay_steps", "assay_backends", "assay_ops")


def _modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_assay_or_its_command_line_loads_no_layer() -> None:
    # `assay status` on a million-run folder answers from SQLite; importing every layer
    # (numpy, pydantic, submitit) would cost it several times its query.
    for code in ("import assay", "import assay._cli"):
        loaded = _modules_after(code)
        assert not loaded & set(HEAVY), f"{code!r} imported {sorted(loaded & set(HEAVY))}"


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        assay.Nope  # noqa: B018


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from assay import *", namespace)
    assert {"Experiment", "grid", "Step", "param_scope"} <= set(namespace)
