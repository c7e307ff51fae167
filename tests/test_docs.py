"""Every Python code block of the documentation runs, so the docs cannot drift from the code.

The blocks of one page run in order in one module, in a fresh working directory, like a
script the reader runs. A block preceded by the line ``<!-- no-run -->`` is
shown but not run (for example one that needs a Slurm cluster); a block preceded by
``<!-- requires: NAME -->`` runs only where the module ``NAME`` can be imported.
"""

from __future__ import annotations

import contextvars
import gc
import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._workspace import ROOT

FENCE = re.compile(
    r"(?P<marker><!--\s*(?P<kind>no-run|requires:\s*(?P<module>[\w.]+))\s*-->\s*\n)?"
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    skip_reason: str | None


def documented_pages() -> list[Path]:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    pages += sorted(ROOT.glob("packages/*/README.md"))
    pages.append(ROOT / "README.md")
    return [page for page in pages if page.exists()]


def code_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        indent = match["indent"]
        lines = match["code"].splitlines(keepends=True)
        code = "".join(line[len(indent) :] if line.startswith(indent) else line for line in lines)
        blocks.append(Block(page, text.count("\n", 0, match.start("code")), code, _skip(match)))
    return blocks


def _skip(match: re.Match[str]) -> str | None:
    if match["kind"] == "no-run":
        return "marked no-run"
    module = match["module"]
    if module and importlib.util.find_spec(module.split(".")[0]) is None:
        return f"needs {module}"
    return None


PAGES = [page for page in documented_pages() if code_blocks(page)]


def test_the_block_finder_sees_fences_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- no-run -->\n```python\nboom()\n```\n"
        "- item\n\n    ```python\n    y = x + 1\n    ```\n```text\nnot python\n```\n",
        encoding="utf-8",
    )
    blocks = code_blocks(page)
    assert [block.code for block in blocks] == ["x = 1\n", "boom()\n", "y = x + 1\n"]
    assert [block.skip_reason for block in blocks] == [None, "marked no-run", None]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_documentation_code_blocks_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Like a script run as __main__, the page is a module that can be imported by name while it
    # runs, so that operations defined on it resolve by their "module:name" ref in this process.
    # Every page is the same module, as every script is __main__: a class a page defines
    # replaces the one of the same name an earlier page defined, instead of standing beside it.
    module = types.ModuleType("docs_page")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # A page may enter scopes or write top-level parameters, as a script would: it runs in its
    # own copy of the context variables so that nothing it sets is seen by later tests.
    # The base that param_scope.frozen() publishes process-wide is put back as it was.
    base = importlib.import_module("assay_scope._state").ROOT_VALUES
    published = dict(base)
    context = contextvars.copy_context()
    try:
        for block in code_blocks(page):
            if block.skip_reason:
                continue
            source = compile(block.code, f"{page.relative_to(ROOT)}:{block.line + 1}", "exec")
            context.run(exec, source, module.__dict__)
    finally:
        base.clear()
        base.update(published)
        # What the page defined (a Step named like a test's) must not outlive it.
        module.__dict__.clear()
        gc.collect()
