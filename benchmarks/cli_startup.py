"""How long `orchestrator --help` and `orchestrator plan --json` take, against bare `python -c pass`.

Goal: --help well under 0.3 s. Prints medians of repeated runs measured side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15


def median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    bare = median_seconds([sys.executable, "-c", "pass"])
    rows = {
        "--help": median_seconds([sys.executable, "-m", "orchestrator", "--help"]),
        "targets --json": median_seconds([sys.executable, "-m", "orchestrator", "targets", "--json"]),
        "plan --target cpu --json": median_seconds(
            [sys.executable, "-m", "orchestrator", "plan", "--target", "cpu", "--json"]
        ),
    }
    print(f"python -c pass: {bare * 1000:.0f} ms")
    for name, seconds in rows.items():
        print(f"orchestrator {name}: {seconds * 1000:.0f} ms ({seconds / bare:.1f}x bare python)")


if __name__ == "__main__":
    main()
