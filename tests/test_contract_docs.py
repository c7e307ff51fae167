"""What the READMEs and the meta-package promise: the demo first, links home, all six installed."""

from __future__ import annotations

import re

import pytest

from assay._demo import SAMPLE_SIZES
from tests._workspace import LAYERS, PACKAGES, ROOT, canonical, requirement_name, tomllib

README = ROOT / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def test_the_readme_opens_with_the_command_that_runs_the_demo() -> None:
    text = README.read_text()
    first_block = FENCE.search(text)
    assert first_block is not None
    first_command = first_block.group(1).strip().splitlines()[0]
    match = re.search(r"hatch run (\w+)\s*$", first_command)
    assert match, first_command
    # before the block: the title alone, so the command is the first thing a reader sees
    assert text[: first_block.start()].strip() == "# assay"
    scripts = _pyproject()["tool"]["hatch"]["envs"]["default"]["scripts"]  # type: ignore[index]
    assert scripts[match.group(1)] == "assay demo"


def test_the_readme_shows_the_demo_output_and_its_second_run_from_cache() -> None:
    text = README.read_text()
    blocks = FENCE.findall(text)
    output = next(b for b in blocks if "Monte Carlo estimate of π" in b)
    # the columns the demo prints, in its order, and one row per sample size
    header = next(line for line in output.splitlines() if "n_samples" in line)
    columns = [c.strip() for c in re.split(r"[┃│|]\s", header) if c.strip(" ┃│")]
    assert columns[:2] == ["n_samples", "runs"]
    assert "mean estimate" in header
    assert "std |error|" in header
    for n in SAMPLE_SIZES:
        assert re.search(rf"│\s+{n} │", output), n
    assert "run the demo again" in output
    assert any(re.search(r"all \d+ runs came from the cache in", b) for b in blocks)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_package_readme_links_to_the_root_readme(layer: str) -> None:
    readme = PACKAGES[layer].path / "README.md"
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", readme.read_text())
    home = [t for t in targets if not t.startswith(("http:", "https:"))]
    assert any((readme.parent / t).resolve() == README.resolve() for t in home), targets


def test_the_meta_package_requires_all_five_layers_and_ships_the_command() -> None:
    project = _pyproject()["project"]
    required = {requirement_name(r) for r in project["dependencies"]}  # type: ignore[index]
    assert {PACKAGES[layer].dist for layer in LAYERS} <= required
    assert canonical(project["name"]) == "assay"  # type: ignore[index]
    assert "assay" in project["scripts"]  # type: ignore[index]
    assert {"pandas", "plot"} <= set(project["optional-dependencies"])  # type: ignore[index]


def test_the_readme_install_line_from_the_repository_names_every_package_folder() -> None:
    text = README.read_text()
    lines = [line for line in re.findall(r"`(pip install [^`]*)`", text) if "packages/" in line]
    assert lines, "the README says how to install all six from a checkout"
    for line in lines:
        folders = set(re.findall(r"packages/(\w+)", line))
        assert folders == set(LAYERS), line
        assert line.split()[-1] == "."  # and the meta-package itself


def test_pip_install_of_the_repository_is_what_the_docs_say() -> None:
    # the docs' own install instructions name the same folders as the README
    pages = [ROOT / "docs" / "getting-started.md", ROOT / "docs" / "index.md"]
    found = [
        line
        for page in pages
        if page.is_file()
        for line in re.findall(r"pip install [^\n`]*packages/[^\n`]*", page.read_text())
    ]
    assert found, "the getting-started page says how to install from a checkout"
    named = [set(re.findall(r"packages/(\w+)", line)) for line in found]
    assert set(LAYERS) in named, "one command installs every layer"
    for line, layers in zip(found, named, strict=True):
        # A command for one package names the folders of the layers it builds on too.
        needed = {
            dependency.removeprefix("assay-")
            for layer in layers
            for dependency in PACKAGES[layer].local_requires
        }
        assert needed <= layers, f"{line!r} misses {sorted(needed - layers)}"
    # And one command per package: each layer is the top of some line.
    tops = {max(layers, key=LAYERS.index) for layers in named}
    assert tops == set(LAYERS), f"no install command for {sorted(set(LAYERS) - tops)}"
