"""How long `orchestrator --help` and `orchestrator plan --json` take, against bare `python -c pass`.

    python benchmarks/cli_startup.py [--runs 15]
    python benchmarks/cli_startup.py --smoke     # one run of each: the script works (the suite's check)

Goal: --help well under 0.3 s. Prints medians of repeated runs measured side by side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

RUNS = 15


def median_seconds(argv: list[str], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        # A command that fails is no figure: its time is that of its error.
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"{' '.join(argv[1:])}: exit {done.returncode}: {last}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each command (the median is printed)")
    parser.add_argument("--smoke", action="store_true", help="one run of each (seconds): the script works")
    opts = parser.parse_args()
    runs = 1 if opts.smoke else opts.runs
    bare = median_seconds([sys.executable, "-c", "pass"], runs)
    rows = {
        "--help": median_seconds([sys.executable, "-m", "orchestrator", "--help"], runs),
        "targets --json": median_seconds([sys.executable, "-m", "orchestrator", "targets", "--json"], runs),
        "plan --target cpu --json": median_seconds(
            [sys.executable, "-m", "orchestrator", "plan", "--target", "cpu", "--json"], runs
        ),
    }
    print(f"python -c pass: {bare * 1000:.0f} ms")
    for name, seconds in rows.items():
        print(f"orchestrator {name}: {seconds * 1000:.0f} ms ({seconds / bare:.1f}x bare python)")


if __name__ == "__main__":
    main()
