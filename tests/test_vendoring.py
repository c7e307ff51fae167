"""assay_scope copied into another tool's ``_vendor`` folder works beside an installed copy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests._workspace import vendor_scope

SCRIPT = textwrap.dedent(
    """
    import threading

    import assay_scope as installed
    from othertool._vendor import assay_scope as vendored

    assert vendored is not installed
    assert vendored.__file__ != installed.__file__
    assert vendored.param_scope is not installed.param_scope

    @vendored.auto_param("model")
    def build(width=8, depth=2):
        return width, depth

    @installed.auto_param("model")
    def build_installed(width=8, depth=2):
        return width, depth

    with vendored.param_scope(**{"model.width": 64}):
        # The vendored copy sees its own scope ...
        assert build() == (64, 2)
        assert vendored.param_scope.model.width(0) == 64
        # ... and the installed copy sees nothing of it.
        assert build_installed() == (8, 2)
        assert installed.param_scope.model.width(0) == 0
        with installed.param_scope(**{"model.depth": 5}):
            assert build_installed() == (8, 5)
            assert build() == (64, 2)
        assert build_installed() == (8, 2)

    # Leaving the scopes restored both copies.
    assert build() == (8, 2) and build_installed() == (8, 2)

    # Threads: each copy keeps its own per-thread state.
    seen = []
    def worker():
        with vendored.param_scope(**{"model.width": 1}):
            seen.append((build(), build_installed()))
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert seen == [((1, 2), (8, 2))] * 4
    print("vendored ok")
    """
)


def test_vendored_copy_is_independent_of_the_installed_one(tmp_path: Path) -> None:
    vendor_scope(tmp_path)

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "vendored ok"
