"""The Python examples of the package README and the user guide run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "packages" / "scope" / "README.md", ROOT / "docs" / "guide" / "scope.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def run_blocks(path: Path) -> str:
    """Run the file's python blocks in order in one namespace; return what they printed."""
    blocks = python_blocks(path)
    assert blocks, f"{path} has no python example"
    namespace: dict[str, object] = {"__name__": "docs_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(path), "exec"), namespace)
    return out.getvalue()


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_python_blocks_run_in_order(path: Path) -> None:
    assert run_blocks(path)


def test_guide_examples_print_what_their_comments_say() -> None:
    printed = run_blocks(DOCS[1])
    for expected in [
        "0.1\n64\n2\n10\n",
        "True {'model.width': 64, 'model.depth': 2}",
        "3\n0.5\nTrue\n'0.5'\n",
        "parameter 'train.epochs' = 'three' cannot be converted to int",
        "0.01 5 0.9\n0.1 None\n0.1\n",
        "('d', 0.1, 10)\n('d', 0.5, 3)\n('d', 0.01, 3)\n('d', 0.5, 1)\n",
        "[8, 64] 64 64\n",
        "[7] 0\n",
        "{'train.lr': 0.1, 'train.epochs': 3, 'model.width': 32}\n['model.width', 'train.lr']\n",
        "(0.5, 64, 16)\n",
    ]:
        assert expected in printed


def test_readme_example_prints_what_its_comments_say() -> None:
    printed = run_blocks(DOCS[0])
    assert printed == ("mnist: lr=0.01 epochs=3 width=64\n{'train.epochs': 3, 'model.width': 64}\n")
