"""The documentation site builds without warnings, and its API reference renders cleanly.

The API reference is generated from the docstrings by mkdocstrings (google style). What reads
well in the source can render badly on the site: a reStructuredText role (``:func:`x```) shows
as literal text instead of a link, an example section the generator does not recognise
(``Example:``) is shown as an admonition of prose in which each ``>>>`` prompt becomes a
nested block quote, and a doctest line outside an example section is run together with the
text around it. This test builds the site as ``hatch run docs:build`` does (``mkdocs build
--strict``: an unknown cross-reference target fails the build) and reads the API pages.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests._workspace import ROOT

API_PAGES = sorted(path.stem for path in (ROOT / "docs" / "api").glob("*.md"))

RAW_ROLE = re.compile(r":(func|class|meth|attr|mod|exc|data|obj):")
# An example section the docstring parser did not recognise: rendered as an admonition
# (``Example:``) or as a paragraph starting with the title; a recognised one is a section title.
PROSE_EXAMPLE = re.compile(r'<details class="example"|class="admonition example"|<p>\s*Examples?:')
HEADING = re.compile(r"h[1-6]")
HEADING_ID = re.compile(r'<h[1-6] id="([^"]+)"')


def _where(html: str, position: int) -> str:
    """Name the documented object whose text holds ``position``, and the line."""
    ids = HEADING_ID.findall(html, 0, position)
    return f"{ids[-1] if ids else '(page)'} (line {html.count(chr(10), 0, position) + 1})"


class _Reader(HTMLParser):
    """Find doctest lines and block quotes outside code in one rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.code = 0  # depth of <pre> and <code>
        self.quotes = 0  # depth of <blockquote>
        self.doctests_in_code = 0
        self.problems: list[str] = []
        self.object = "(page)"  # the documented object whose text is being read

    def _problem(self, what: str) -> None:
        self.problems.append(f"{self.object} (line {self.getpos()[0]}): {what}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("pre", "code"):
            self.code += 1
        elif tag == "blockquote":
            if self.quotes:
                self._problem(
                    "block quotes nested in a block quote (doctest prompts read as quotes)"
                )
            self.quotes += 1
        elif HEADING.fullmatch(tag) and dict(attrs).get("id"):
            self.object = str(dict(attrs)["id"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("pre", "code"):
            self.code = max(0, self.code - 1)
        elif tag == "blockquote":
            self.quotes = max(0, self.quotes - 1)

    def handle_data(self, data: str) -> None:
        if ">>>" not in data:
            return
        if self.code and not self.quotes:
            self.doctests_in_code += 1
            return
        where = "inside a block quote" if self.quotes else "in prose, not as code"
        line = next(line for line in data.splitlines() if ">>>" in line).strip()
        self._problem(f"doctest line {where}: {line[:80]!r}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: the test environment declares the docs tools")
    out = tmp_path_factory.mktemp("docs") / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    command += ["--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)]
    build = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("page", API_PAGES)
def test_api_page_renders_cleanly(site: Path, page: str) -> None:
    html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
    problems = []
    for match in RAW_ROLE.finditer(html):
        context = html[max(0, match.start() - 40) : match.end() + 40].replace("\n", " ")
        problems.append(f"{_where(html, match.start())}: raw role, not a link: {context!r}")
    for match in PROSE_EXAMPLE.finditer(html):
        problems.append(f"{_where(html, match.start())}: example section as prose: {match[0]!r}")
    reader = _Reader()
    reader.feed(html)
    problems += reader.problems
    assert not problems, f"docs/api/{page}.md renders badly:\n" + "\n".join(problems)
    # The checks above see the examples: they are on the page, as highlighted code.
    assert reader.doctests_in_code > 0, f"no doctest shown as code on docs/api/{page}.md"
