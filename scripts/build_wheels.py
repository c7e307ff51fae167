"""Build the wheel and the sdist of all six packages into one folder.

    python3 scripts/build_wheels.py              # into dist/ at the repository's root
    python3 scripts/build_wheels.py --out DIR    # into DIR

It needs only ``python3`` and ``pip``: the build frontend (``build``) and the build backend
(``hatchling``) are installed by pip into a temporary folder (``pip install --target``, which
leaves the interpreter's own packages, and a system Python marked as externally managed, alone)
and used from there. Hatch is not needed, nor a virtual environment.

Each package is built as ``python -m build`` builds it: first the sdist, then the wheel from the
unpacked sdist, so a file missing from an sdist fails the build. Wheels and sdists of assay
packages already in the folder are replaced. The folder then holds everything needed to install
any of the packages offline, apart from their third-party dependencies:
``pip install --find-links DIR assay``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The packages, lowest layer first, then the meta-package (the repository's root).
SOURCES = [
    ROOT / "packages" / "scope",
    ROOT / "packages" / "context",
    ROOT / "packages" / "ops",
    ROOT / "packages" / "steps",
    ROOT / "packages" / "backends",
    ROOT,
]

#: The build frontend, and the backend every pyproject.toml names in ``[build-system]``.
TOOLS = ["build>=1.2", "hatchling>=1.27"]


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(
            f"build_wheels: {' '.join(command)} failed (exit code {done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )


def _ours(path: Path) -> bool:
    """Is this a wheel or an sdist of an assay package (the ones this script writes)?"""
    return path.name.startswith(("assay-", "assay_")) and path.name.endswith((".whl", ".tar.gz"))


def build_all(out: Path) -> list[Path]:
    """Build the sdist and the wheel of every package into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    for old in filter(_ours, out.iterdir()):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="assay-build-tools-") as tools:
        print(f"installing {' and '.join(TOOLS)} with pip (into a temporary folder)", flush=True)
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-warn-script-location", "--target", tools, *TOOLS]
        )  # fmt: skip
        path = os.pathsep.join(filter(None, [tools, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path)
        for source in SOURCES:
            print(f"building {source.relative_to(ROOT).as_posix() or '.'}", flush=True)
            # --no-isolation: the backend comes from the tools folder; build still checks that
            # it satisfies the package's [build-system] requirements.
            build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)]
            _run([*build, str(source)], env=env)
    return sorted(filter(_ours, out.iterdir()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "dist",
        help="the folder the wheels and sdists are written to (default: dist/ at the root)",
    )
    args = parser.parse_args(argv)
    built = build_all(args.out.resolve())
    print(f"built {len(built)} files in {args.out}:")
    for path in built:
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
