"""A pipeline of cached Steps over a dataset that this example generates.

Each signal file goes through three steps — load, smooth, find peaks — and every step keeps
one cache entry per file. Run it twice: the first run computes every item, the second serves
every item from the cache. Change a setting of one step and only that step and the ones
after it run again; the steps before it are still served from the cache:

    python examples/steps_pipeline.py [--folder FOLDER] [--window N]
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from assay import Cached, Chain, Step

N_SIGNALS = 6
LENGTH = 2_000

#: How many items each step really computed in this process (cache hits do not call _run).
COMPUTED: Counter[str] = Counter()


def generate_dataset(folder: Path) -> list[str]:
    """Write noisy sine waves as .npy files (once; the same files on every machine)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    paths = []
    for i in range(N_SIGNALS):
        path = folder / f"signal-{i}.npy"
        t = np.linspace(0.0, 1.0, LENGTH)
        signal = np.sin(2 * np.pi * (i + 2) * t) + rng.normal(0.0, 0.4, LENGTH)
        if not path.exists():
            np.save(path, signal)
        paths.append(str(path))
    return paths


class Load(Step):
    """Read one signal file; the cache key is the file's content, not its name."""

    def item_uid(self, value: Any) -> str | None:
        # Keyed by content: a regenerated, different file gets a new entry, never a stale one.
        digest = hashlib.sha256(Path(value).read_bytes()).hexdigest()[:32]
        return f"{Path(value).stem}-{digest}"

    def _run(self, value: str) -> np.ndarray:
        COMPUTED["load"] += 1
        return np.load(value)


class Smooth(Step):
    """Moving average over ``window`` samples."""

    # A window of 0 or less has no average: refused when the step is built, not deep in numpy
    window: int = Field(default=25, gt=0)

    def _run(self, value: np.ndarray) -> np.ndarray:
        COMPUTED["smooth"] += 1
        kernel = np.ones(self.window) / self.window
        return np.convolve(value, kernel, mode="same")


class Peaks(Step):
    """Local maxima above ``threshold`` of a smoothed signal."""

    threshold: float = 0.5

    def _run(self, value: np.ndarray) -> dict[str, float]:
        COMPUTED["peaks"] += 1
        inner = value[1:-1]
        peaks = (inner > value[:-2]) & (inner >= value[2:]) & (inner > self.threshold)
        return {"peaks": int(peaks.sum()), "max": float(value.max())}


def pipeline(folder: Path, window: int) -> Chain:
    # Each step has its own cache (infra); the chain hands them its folder.
    return Chain(
        steps={
            "load": Load(infra=Cached()),
            "smooth": Smooth(window=window, infra=Cached()),
            "peaks": Peaks(infra=Cached()),
        },
        infra=Cached(folder=folder),
    )


def positive_int(text: str) -> int:
    """Read a command-line value that must be a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}; expected a positive int, e.g. 25")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="pipeline", help="where the data and cache go")
    parser.add_argument("--window", type=positive_int, default=25, help="moving-average window")
    args = parser.parse_args()
    folder = Path(args.folder)
    paths = generate_dataset(folder / "data")
    chain = pipeline(folder / "cache", args.window)
    print(f"window={args.window}, {len(paths)} signals")
    results = list(chain.run_many(paths))
    for name in ["load", "smooth", "peaks"]:
        computed = COMPUTED[name]
        print(f"{name:>6}: {computed} computed, {len(paths) - computed} from cache")
    for path, result in zip(paths, results, strict=True):
        print(f"{Path(path).stem}: {result['peaks']} peaks, max {result['max']:.3f}")


if __name__ == "__main__":
    main()
