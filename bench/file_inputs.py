"""Path inputs keyed by content: the first hash of a 1 GB file, and the next run's cost.

Run: ``python bench/file_inputs.py`` (needs rich; exca 0.6 and joblib when installed).
Every figure is measured on this machine in this run; nothing is extrapolated.

exca and joblib.Memory key a ``Path`` by its name (an edited file serves the old result), so
they have no content hashing to compare with: their cost of keying the same input by name is
shown beside assay's as the floor of what any keying costs, with the raw floors of the two
operations (xxh3 over the bytes from memory; one ``stat`` of the file).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import xxhash
from assay_steps import Cached, Step, _filehash
from assay_steps._uid import uid_of
from rich.console import Console
from rich.table import Table

SIZE = 2**30  # 1 GiB


class Lines(Step):
    def _run(self, path: Path) -> int:
        return path.stat().st_size


def best(function: Callable[[], object], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def make_file(folder: Path) -> Path:
    path = folder / "data.bin"
    block = os.urandom(2**24)
    with open(path, "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)
    past = time.time() - 60  # not changed "just now": its digest may be remembered
    os.utime(path, (past, past))
    return path


def hash_floor(path: Path) -> float:
    """The time of xxh3-128 over the file's bytes already in memory: no reading counted."""
    data = path.read_bytes()
    return best(lambda: xxhash.xxh3_128_digest(data), 3)


def peer_keying(path: Path) -> list[tuple[str, float]]:
    found = []
    try:
        from joblib.hashing import hash as joblib_hash

        found.append(("joblib.Memory key (by name)", best(lambda: joblib_hash(path))))
    except ImportError:
        found.append(("joblib.Memory key (by name)", float("nan")))
    try:
        from exca.confdict import ConfDict  # exca keys a config by its text

        found.append(("exca key (by name)", best(lambda: ConfDict({"p": str(path)}).to_uid())))
    except ImportError:
        found.append(("exca key (by name)", float("nan")))
    return found


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = make_file(root)
        floor_hash = hash_floor(path)
        floor_stat = best(lambda: os.stat(path), 101)

        _filehash.forget_memo()
        started = time.perf_counter()
        uid_of(path)
        first = time.perf_counter() - started

        cache = root / "cache"
        Lines(infra=Cached(folder=cache)).run(path)  # remembers the digest in the folder

        def next_process() -> None:
            _filehash.forget_memo()  # as a new process: only the folder's memo is left
            Lines(infra=Cached(folder=cache)).run(path)

        second_run = statistics.median(best(next_process, 1) for _ in range(21))
        memo_hit = best(lambda: uid_of(path), 101)

        table = Table(title="a 1 GiB file as a step input, keyed by content")
        table.add_column("measure")
        table.add_column("time", justify="right")
        table.add_column("note")
        table.add_row(
            "first hash (cold memo)", f"{first * 1e3:.0f} ms", f"{SIZE / first / 1e9:.2f} GB/s"
        )
        table.add_row(
            "floor: xxh3-128 over the bytes in memory",
            f"{floor_hash * 1e3:.0f} ms",
            f"{SIZE / floor_hash / 1e9:.2f} GB/s; first hash / floor = {first / floor_hash:.2f}",
        )
        table.add_row(
            "next process: whole cached run (memo read, stat, uid, hit)",
            f"{second_run * 1e3:.3f} ms",
            "target ≤ 1 ms",
        )
        table.add_row("same process: uid of the unchanged file", f"{memo_hit * 1e6:.1f} µs", "")
        table.add_row("floor: one stat of the file", f"{floor_stat * 1e6:.1f} µs", "")
        for name, seconds in peer_keying(path):
            ratio = seconds / memo_hit if seconds == seconds else float("nan")
            table.add_row(
                name,
                f"{seconds * 1e6:.1f} µs",
                f"ratio peer/assay = {ratio:.2f} (above 1: assay faster); only assay sees an edit",
            )
        console.print(table)


if __name__ == "__main__":
    main()
