"""A tool that vendors assay_scope (and has no assay installed) gets a working command line and
scopes that travel to worker processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._workspace import vendor_scope

CLI = textwrap.dedent(
    '''
    """othertool: trains things."""
    from othertool._vendor.assay_scope import auto_param, launch, param_scope


    @auto_param("train")
    def train(data: str, dry_run: bool, lr: float = 0.1) -> None:
        """Train a model.

        Args:
            data: the data set.
            dry_run: only say what would run.
            lr: learning rate.
        """
        print(data, dry_run, lr, param_scope.model.width | 32)


    if __name__ == "__main__":
        launch(train)
    '''
)

POOL = textwrap.dedent(
    """
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from othertool._vendor.assay_scope import param_scope
    from othertool.work import build, read_width

    if __name__ == "__main__":
        with param_scope(**{"model.width": 64}) as scope:
            values = dict(pickle.loads(pickle.dumps(scope)))
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                # A worker starts with no scope of its own; it enters the values it is sent.
                print(pool.submit(build).result(), pool.submit(read_width, values).result())
    """
)

WORK = textwrap.dedent(
    """
    from othertool._vendor.assay_scope import auto_param, param_scope


    @auto_param("model")
    def build(width: int = 8, depth: int = 2) -> tuple[int, int]:
        return width, depth


    def read_width(values: dict[str, object]) -> tuple[int, int]:
        with param_scope(**values):
            return build()
    """
)


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    """A tool folder with assay_scope copied into othertool/_vendor/, and no assay installed."""
    tool_folder = vendor_scope(tmp_path)
    (tool_folder / "cli.py").write_text(CLI)
    (tool_folder / "work.py").write_text(WORK)
    (tmp_path / "pool.py").write_text(POOL)
    return tmp_path


def run(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so an installed assay_scope cannot stand in for the vendored copy.
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=tool,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tool), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def test_the_vendored_command_line_helps_and_runs(tool: Path) -> None:
    helped = run(tool, "othertool/cli.py", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: cli.py [-h]")
    assert "learning rate. (default: 0.1)" in helped.stdout
    assert "assay" not in helped.stdout  # the tool's users see the tool, not its vendored part

    done = run(tool, "othertool/cli.py", "mnist", "no", "--lr", "0.5", "-D", "model.width=64")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mnist", "False", "0.5", "64"]

    refused = run(tool, "othertool/cli.py", "mnist", "maybe")
    assert refused.returncode == 2
    assert "'dry_run' = 'maybe'" in refused.stderr


def test_vendored_scopes_and_auto_param_functions_reach_a_spawned_worker(tool: Path) -> None:
    done = run(tool, "pool.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(8, 2) (64, 2)"
