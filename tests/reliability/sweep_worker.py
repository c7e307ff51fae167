"""A worker run in a fresh interpreter: ``python sweep_worker.py FOLDER BACKEND [N [DELAY]]``.

Computes items ``0..N-1`` of ``ReliabilityPayload`` into ``FOLDER`` with the named backend
(``Cached`` or a pool of ``assay-backends``), each taking ``DELAY`` seconds, then prints
``swept``; the tests kill it at random points, and check that the kill came before that line.
"""

from __future__ import annotations

import sys

from reliability_steps import ReliabilityPayload, sweep_all


def main() -> None:
    folder, backend = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    infra = {"backend": backend, "folder": folder}
    if backend != "Cached":
        infra.update({"max_jobs": 2, "progress": False})
    step = ReliabilityPayload(delay=delay, infra=infra)
    sweep_all(step, list(range(count)))
    print("swept", flush=True)


if __name__ == "__main__":
    main()
