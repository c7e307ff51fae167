"""Operation modules that tests write, importable by the driver and by every kind of worker."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def ops_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, source: str
) -> Iterator[str]:
    """Write ``source`` as a module of its own; yield its name, forget it afterwards.

    The module goes to ``<tmp_path>/modules``, on this process's path and on ``PYTHONPATH``,
    which new interpreters (spawned workers, batch jobs) inherit. Its name is unique to the
    test (``<prefix>_<tmp_path's name>``), so that modules of different tests never mix in
    ``sys.modules`` or in a job.
    """
    name = f"{prefix}_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "modules"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *sys.path]))
    try:
        yield name
    finally:
        sys.modules.pop(name, None)
