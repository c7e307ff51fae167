"""Hostile names and inputs: each rejected with a clear error, nothing written outside the folder.

Names with ``..``, ``/``, absolute paths, NUL, very long names and unicode, for steps,
metrics, artifacts and experiments; parameters that cannot be serialised; configurations
with unknown fields or wrong types; command lines with bad syntax. Every test runs in a
sandbox and checks, by listing the temporary directory and its parent, that nothing
appeared outside the folder it gave.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from assay_ops import Capture, SeedBundle, operation
from assay_steps import Func, Step
from audit import count
from reliability_steps import ReliabilityPayload, expected, fails, run_forked, same, sweep_all, tree

from assay import Experiment, Results, explicit, grid
from assay._cli import main


class Sandbox:
    """A temporary tree with one folder the code may write to, and the cwd inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "sandbox" / "folder"
        self.cwd = root / "sandbox" / "cwd"
        self.outside = root / "outside"  # absolute hostile names point here
        self.cwd.mkdir(parents=True)
        self.outside.mkdir()
        self.parent_before = set(os.listdir(root.parent))
        self.before = tree(root)

    def written_outside(self, *allowed: Path) -> list[str]:
        """New paths not under the folder (or the other ``allowed`` ones)."""
        zones = [p.relative_to(self.root) for p in (self.folder, *allowed)]
        new = tree(self.root) - self.before
        outside = [
            path
            for path in new
            if not any(Path(path) == z or z in Path(path).parents for z in zones)
            and not any(Path(path) in z.parents for z in zones)  # parents of the folder
        ]
        parent_new = set(os.listdir(self.root.parent)) - self.parent_before
        return sorted(outside) + sorted(parent_new)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path)
    monkeypatch.chdir(box.cwd)
    yield box
    assert box.written_outside(box.cwd / "runs") == []


def hostile_names(box: Sandbox) -> dict[str, str]:
    """Names that must not become paths, by what is wrong with them."""
    return {
        "dotdot": "../escaped",
        "dotdot-deep": "a/../../escaped",
        "separator": "a/b",
        "absolute": str(box.outside / "escaped"),
        "nul": "x\0y",
        "very-long": "n" * 300,
        "dot": ".",
        "empty": "",
    }


NAME_KINDS = ["dotdot", "dotdot-deep", "separator", "absolute", "nul", "very-long", "dot", "empty"]
UNICODE = "Ünïcödé_π"


# ---------------------------------------------------------------- step names


def _step_class(name: str) -> type[Step]:
    def _run(self: Step, value: int) -> int:
        return value * 2

    return type(name, (Step,), {"_run": _run, "__module__": __name__})


@pytest.mark.parametrize(
    "kind",
    ["dotdot", "dotdot-deep", "separator", "absolute", "very-long", "nul"],
)
def test_hostile_step_class_names_never_become_paths(sandbox: Sandbox, kind: str) -> None:
    name = hostile_names(sandbox)[kind]
    count("hostile inputs")
    try:
        cls = _step_class(name)
    except (TypeError, ValueError):
        return  # refused by Python or pydantic at class creation: fine
    try:
        expected = f"step class name {name!r} cannot name a cache folder: expected a Python"
        with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
            cls(infra={"backend": "Cached", "folder": sandbox.folder}).run(3)
    finally:
        Step._registry.pop(name, None)


def test_unicode_step_class_name_works(sandbox: Sandbox) -> None:
    cls = _step_class(UNICODE)
    try:
        step = cls(infra={"backend": "Cached", "folder": sandbox.folder})
        assert step.run(21) == 42
        assert step.lookup(21).status == "success"
    finally:
        Step._registry.pop(UNICODE, None)


class ReliabilityCustomUid(Step):
    """A step keyed by a uid its input provides."""

    def item_uid(self, value: Any) -> str | None:
        return str(value)

    def _run(self, value: Any) -> str:
        return f"ran {value}"


@pytest.mark.parametrize("kind", NAME_KINDS)
def test_hostile_item_uids_become_safe_names_inside_the_folder(sandbox: Sandbox, kind: str) -> None:
    # As exca does, an item uid unsafe as a file name is turned into a safe one (its safe
    # characters and a hash of the whole uid): the item is cached, and nothing it names is
    # ever reached outside the cache folder.
    name = hostile_names(sandbox)[kind]
    count("hostile inputs")
    step = ReliabilityCustomUid(infra={"backend": "Cached", "folder": sandbox.folder})
    assert step.run(name) == f"ran {name}"
    handle = step.lookup(name)
    assert handle.status == "success"
    assert handle.uid != name
    assert "/" not in handle.uid
    assert "\0" not in handle.uid
    assert (
        ReliabilityCustomUid(infra={"backend": "Cached", "folder": sandbox.folder}).run(name)
        == f"ran {name}"
    )
    assert sandbox.written_outside() == []


def test_distinct_hostile_item_uids_get_distinct_safe_names(sandbox: Sandbox) -> None:
    step = ReliabilityCustomUid(infra={"backend": "Cached", "folder": sandbox.folder})
    names = list(hostile_names(sandbox).values())
    uids = {step.lookup(name).uid for name in names}
    assert len(uids) == len(names)


# ---------------------------------------------------------------- metric and artifact names


@pytest.mark.parametrize("kind", [k for k in NAME_KINDS if k != "very-long"])
def test_hostile_metric_names_are_refused(sandbox: Sandbox, kind: str) -> None:
    name = hostile_names(sandbox)[kind]
    count("hostile inputs")
    with pytest.raises((ValueError, TypeError), match="metric name"):
        Capture().metric(name, 1.0)


@operation
def named_outputs(params: dict[str, Any], seeds: SeedBundle, capture: Capture) -> None:
    """Records a metric and an artifact under the names its params give."""
    if "metric" in params:
        capture.metric(params["metric"], 1.0)
    if "artifact" in params:
        capture.artifact(params["artifact"], b"payload")
    capture.metric("done", 1.0)


def _outputs_experiment(box: Sandbox, **params: str) -> Results:
    return Experiment(
        "outputs",
        named_outputs,
        explicit([params]),
        folder=box.folder,
        progress=False,
    ).run()


# A long metric name is valid: metric names never become paths.
@pytest.mark.parametrize(
    ("what", "kind"),
    [("artifact", kind) for kind in NAME_KINDS]
    + [("metric", kind) for kind in NAME_KINDS if kind != "very-long"],
)
def test_hostile_output_names_fail_the_run_clearly(sandbox: Sandbox, kind: str, what: str) -> None:
    name = hostile_names(sandbox)[kind]
    count("hostile inputs")
    results = _outputs_experiment(sandbox, **{what: name})
    (row,) = results.rows
    assert row.status == "failed"
    assert row.error is not None
    # The run's error is the one the capture raised, naming the kind of output and the name.
    assert f"ValueError: {what} name {name!r} is " in row.error, row.error


def test_unicode_output_names_work(sandbox: Sandbox) -> None:
    results = _outputs_experiment(sandbox, artifact=f"{UNICODE}.txt")
    (row,) = results.rows
    assert row.status == "success"
    (path,) = sandbox.folder.glob(f"runs/*/artifacts/{UNICODE}.txt")
    assert path.read_bytes() == b"payload"


# ---------------------------------------------------------------- experiment names


@pytest.mark.parametrize(
    "kind",
    NAME_KINDS,
)
def test_hostile_experiment_names_are_refused(sandbox: Sandbox, kind: str) -> None:
    """With no folder given, the name becomes ``runs/<name>``: it must stay a single name."""
    name = hostile_names(sandbox)[kind]
    count("hostile inputs")
    # The message names the value and what is wrong with it, each kind its own way.
    if kind == "empty":
        expected = f"name = {name!r}; expected a non-empty string"
    elif kind == "very-long":
        expected = f"name = {name!r} is 300 bytes in the file system encoding; the default folder"
    else:
        expected = f"name = {name!r} cannot name the default folder runs/<name>: expected a single"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
        Experiment(name, "reliability_steps:noisy", explicit([{"n": 3}]), progress=False).run()


def test_unicode_experiment_name_works(sandbox: Sandbox) -> None:
    results = Experiment(UNICODE, "reliability_steps:noisy", explicit([{"n": 3}]), progress=False)
    assert results.run().counts() == {"success": 1}
    assert (sandbox.cwd / "runs" / UNICODE / "index.sqlite").is_file()


# ---------------------------------------------------------------- params and configs


class Opaque:
    """A value without a canonical encoding."""


@pytest.mark.parametrize(
    "params",
    [
        {"x": Opaque()},
        {"x": lambda: 1},
        {"x": {1, 2}},
        {"x": np.arange(3)},
        {1: "key is not a string"},
    ],
    ids=["object", "lambda", "set", "array", "int-key"],
)
def test_unserialisable_params_are_refused_before_anything_runs(
    sandbox: Sandbox, params: dict[Any, Any]
) -> None:
    count("hostile inputs")
    with pytest.raises((ValueError, TypeError)) as raised:
        Experiment(
            "params", "reliability_steps:noisy", explicit([params]), folder=sandbox.folder
        ).run()
    key = next(iter(params))
    assert repr(key) in str(raised.value) or str(key) in str(raised.value)
    assert not sandbox.folder.exists()


def test_unserialisable_grid_values_are_refused(sandbox: Sandbox) -> None:
    count("hostile inputs")
    with pytest.raises((ValueError, TypeError), match="lr"):
        Experiment("grid", "reliability_steps:noisy", grid(lr=[Opaque()]), folder=sandbox.folder)
    assert not sandbox.folder.exists()


@pytest.mark.parametrize(
    "value", [Opaque(), lambda: 1, iter([1])], ids=["object", "lambda", "iter"]
)
def test_step_inputs_without_encoding_are_refused(sandbox: Sandbox, value: Any) -> None:
    count("hostile inputs")
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": sandbox.folder})
    with pytest.raises(TypeError, match=type(value).__name__):
        step.run(value)
    assert list(sandbox.folder.rglob("*.seg")) == []


def test_func_of_a_lambda_is_refused(sandbox: Sandbox) -> None:
    count("hostile inputs")
    step = Func(function=lambda x: x, infra={"backend": "Cached", "folder": sandbox.folder})
    with pytest.raises(TypeError, match="lambda"):
        step.run(1)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"type": "ReliabilityPayload", "bogus": 1}, "bogus"),
        ({"type": "ReliabilityPayload", "delay": "slow"}, "delay"),
        ({"type": "ReliabilityPayload", "side_effects": 3}, "side_effects"),
        ({"type": "NoSuchStep"}, "NoSuchStep"),
        ({"type": 42}, "42"),
        ({"type": "ReliabilityPayload", "infra": {"backend": "Cached", "mode": "maybe"}}, "mode"),
        ({"type": "ReliabilityPayload", "infra": {"backend": "Cached", "colour": 1}}, "colour"),
        ({"type": "ReliabilityPayload", "infra": {"backend": "Nope"}}, "Nope"),
        ({"type": "ReliabilityPayload", "infra": {"backend": "Cached", "fsync": 1}}, "fsync"),
        ({"type": "ReliabilityPayload", "infra": "Cached"}, "infra"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_step_configs_name_the_field(
    sandbox: Sandbox, config: dict[str, Any], named: str
) -> None:
    count("hostile inputs")
    with pytest.raises((ValueError, TypeError, pydantic.ValidationError)) as raised:
        Step.model_validate(config)
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"backend": {"backend": "Cached", "bogus": 1}}, "bogus"),
        ({"backend": {"backend": "Nope"}}, "Nope"),
        ({"backend": "Cached"}, "backend"),
        ({"replicates": "3"}, "replicates"),
        ({"replicates": 0}, "replicates"),
        ({"seed": -1}, "seed"),
        ({"seed": "zero"}, "seed"),
        ({"context": [1, 2]}, "context"),
        ({"scope": {1: 2}}, "scope"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_experiment_arguments_name_the_argument(
    sandbox: Sandbox, kwargs: dict[str, Any], named: str
) -> None:
    count("hostile inputs")
    with pytest.raises((ValueError, TypeError, pydantic.ValidationError)) as raised:
        Experiment(
            "bad",
            "reliability_steps:noisy",
            explicit([{"n": 3}]),
            folder=sandbox.folder,
            progress=False,
            **kwargs,
        ).run()
    assert named in str(raised.value)
    assert not (sandbox.folder / "index.sqlite").exists()


# ---------------------------------------------------------------- command line


def _cli_cases(folder: str) -> dict[str, list[str]]:
    op = "reliability_steps:noisy"
    return {
        "no-operation": ["run"],
        "grid-without-equals": ["run", op, "--folder", folder, "--grid", "n"],
        "grid-without-key": ["run", op, "--folder", folder, "--grid", "=1,2"],
        "grid-twice": ["run", op, "--folder", folder, "--grid", "n=1", "--grid", "n=2"],
        "replicates-not-int": ["run", op, "--folder", folder, "--replicates", "many"],
        "unknown-backend": ["run", op, "--folder", folder, "--backend", "nope"],
        "define-without-equals": ["run", op, "--folder", folder, "-D", "novalue"],
        "unknown-module": ["run", "no_such_module_for_assay:op", "--folder", folder],
        "no-colon": ["run", "reliability_steps", "--folder", folder],
        "not-an-operation": ["run", "reliability_steps:expected", "--folder", folder],
        "bad-code-change": ["run", op, "--folder", folder, "--on-code-change", "maybe"],
        "status-of-nothing": ["status", folder],
        "csv-and-json": ["results", folder, "--csv", "--json"],
        "plot-without-x": ["plot", folder, "mean"],
        "unknown-cache-action": ["cache", "wipe", folder],
        "unknown-command": ["frobnicate"],
    }


@pytest.mark.parametrize("case", list(_cli_cases("F")))
def test_bad_command_lines_are_one_line_errors_and_write_nothing(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    argv = _cli_cases(str(sandbox.folder))[case]
    count("hostile inputs")
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse: usage error
        status = exit_.code if isinstance(exit_.code, int) else 2
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    assert re.search(r"error", err), err
    assert not sandbox.folder.exists(), f"{case} created the folder"


# ---------------------------------------------------------------- special files in a cache folder

SPECIAL_ITEMS = list(range(6))
#: What a hostile (or broken) folder may hold where the cache expects a regular file.
SPECIALS = ["fifo", "symlink-to-dev-zero", "symlink-to-huge-file", "huge-file"]
#: Where: the segment holding the entries, the file of a large array, the saved catalog, a claim.
PLACES = ["segment", "array-file", "index", "claim"]
#: Seconds a reader may take among special files before it counts as blocked.
PATIENCE = 10.0
#: Bytes a reader may read in all: the entries themselves, nothing of a planted file.
READ_BUDGET = 64 * 2**20
#: The size of the planted huge file (sparse: it takes no room).
HUGE = 64 * 2**30


def _read_bytes() -> int:
    """Bytes this process read so far (``rchar``: every read and pread, cached or not)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _plant_special(path: Path, special: str, huge: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if special == "fifo":
        os.mkfifo(path)
    elif special == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif special == "symlink-to-huge-file":
        path.symlink_to(huge)
    else:  # a huge regular file of zeros
        with open(path, "wb") as f:
            f.truncate(HUGE)


def _read_everything(folder: Path, budget: int) -> None:
    """Read every item read-only, then sweep them in cached mode; check every value.

    Read-only, an item whose entry was the planted file raises an error naming it; cached,
    it is recomputed. Run in a forked child: a reader that blocks is killed. At most
    ``budget`` bytes are read in all.
    """
    from layout import new_process

    new_process()
    began, read = time.monotonic(), _read_bytes()
    reader = ReliabilityPayload(infra={"backend": "Cached", "folder": folder, "mode": "read-only"})
    for i in SPECIAL_ITEMS:
        handle = reader.lookup(i)
        if handle.status is None:
            with pytest.raises(RuntimeError, match=handle.uid):
                reader.run(i)
        elif not fails(i):
            assert same(reader.run(i), expected(i)), f"item {i}: a wrong value"
    step = ReliabilityPayload(infra={"backend": "Cached", "folder": folder})
    sweep_all(step, SPECIAL_ITEMS)
    for i in SPECIAL_ITEMS:
        if not fails(i):
            assert same(step.run(i), expected(i)), f"item {i}: a wrong value"
    took, read = time.monotonic() - began, _read_bytes() - read
    assert took < PATIENCE / 2, f"reading took {took:.1f} s"
    assert read < budget, f"reading read {read >> 20} MiB"


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts reads through /proc")
@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("place", PLACES)
def test_special_files_in_a_cache_folder_are_refused_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, place: str, special: str
) -> None:
    """A FIFO, a link to ``/dev/zero`` or to a huge file, or a huge file, planted in a cache.

    Every read returns within seconds (a FIFO opened for reading would block it), nothing is
    read from a FIFO or through a link, no value is wrong, and a cached run completes. A huge
    regular file is read no further than its header says, except as a segment: the bytes
    after a damaged frame are searched for the next frame, in bounded steps (not a tenth of
    the file here).
    """
    from assay_steps import _catalog
    from layout import array_file, claim_files, frame_of, new_process

    count("hostile inputs")
    folder, huge = tmp_path / "cache", tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(HUGE)
    new_process()
    monkeypatch.setattr(_catalog, "SNAPSHOT_FRAMES", 1)  # have the index saved
    sweep_all(ReliabilityPayload(infra={"backend": "Cached", "folder": folder}), SPECIAL_ITEMS)
    new_process()
    handle = ReliabilityPayload(infra={"backend": "Cached", "folder": folder}).lookup(3)
    assert handle.status == "success"
    monkeypatch.undo()
    entries = handle.paths.entries_folder
    target = {
        "segment": lambda: frame_of(entries, handle.uid).segment,
        "array-file": lambda: array_file(entries, handle.uid),
        "index": lambda: entries / "index",
        "claim": lambda: handle.paths.claims_folder / "elsewhere-1-cafe0000-0.claim",
    }[place]()
    assert place == "claim" or target.is_file()
    _plant_special(target, special, huge)
    budget = HUGE // 10 if (place, special) == ("segment", "huge-file") else READ_BUDGET
    status = run_forked(partial(_read_everything, folder, budget), kill_after=PATIENCE)
    assert status != -signal.SIGKILL, f"a reader blocked on the planted {special} ({place})"
    assert status == 0, "a reader failed (traceback on stderr)"
    assert [p for p in claim_files(folder) if p != target] == []
