"""What spreading a model over an RPC worker costs in llama.cpp's protocol itself, measured here on
loopback: `orchestrator bench` (the publisher's llama-batched-bench) with gemma-3-270m on this machine
alone, then with every offloaded layer on one rpc-server worker on 127.0.0.1 (`orchestrator worker up`),
alternated in one run; S_PP and S_TG side by side and their ratios (RPC / local), the median over the
rounds.

    python benchmarks/rpc_overhead.py [--rounds 6]
    python benchmarks/rpc_overhead.py --smoke     # one round of a 32-token prompt: the script works

Fair to the protocol: the head's and the worker's threads add up to this machine's cores (the worker,
which computes, gets all but one; the head one), and local runs compute with as many threads as the
worker, so the figures are neither two processes fighting for the CPU nor two thread counts. Loopback has no wire; over a real link add its latency and
bandwidth (docs/tasks/two-machines.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.app.results import read_records
from tests.assets import demo_model
from tests.integration import build_cpu_image, free_port, run_cli

SETS = ("--npp", "128,512", "--ntg", "32", "--npl", "1")
SMOKE_SETS = ("--npp", "32", "--ntg", "4", "--npl", "1")
WORKER = "sfo-bench-rpc-worker"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="local and RPC runs, alternated, each this often"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="one round of a 32-token prompt: the script works"
    )
    opts = parser.parse_args()
    sets = SMOKE_SETS if opts.smoke else SETS
    rounds = 1 if opts.smoke else opts.rounds
    cores = os.cpu_count() or 2
    worker_threads, head_threads = max(1, cores - 1), 1
    image = build_cpu_image()
    # {pp: [(s_pp, s_tg), ...]} per kind, a pair per round.
    speeds: dict[str, dict[int, list[tuple[float, float]]]] = {"local": {}, "rpc": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir(mode=0o755)
        model = models / "gemma-3-270m-Q4_K_M.gguf"
        shutil.copyfile(demo_model(), model)
        port = free_port()
        env = {**image.env, "ORCHESTRATOR_PROJECT": WORKER}
        try:
            done = run_cli(
                "worker",
                "up",
                "--listen",
                f"127.0.0.1:{port}",
                "--threads",
                str(worker_threads),
                *image.args,
                env=env,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr.strip())
            # The same compute threads either way: the protocol's cost is measured, not a thread count.
            runs = {
                "local": ("--threads", str(worker_threads)),
                "rpc": ("--rpc", f"127.0.0.1:{port}", "--threads", str(head_threads)),
            }
            for round_ in range(rounds):
                for kind, extra in runs.items():
                    results = Path(tmp) / f"{kind}-{round_}"
                    done = run_cli(
                        "bench", "--model", str(model), *sets, "--results", str(results), *extra, *image.args,
                        env={**image.env, "ORCHESTRATOR_PROJECT": "sfo-bench-rpc"}, timeout=3600,
                    )  # fmt: skip
                    if done.returncode != 0:
                        raise SystemExit(f"{kind}: {done.stderr.strip()}")
                    (record,) = read_records(results)
                    for row in record.rows:
                        speeds[kind].setdefault(row.pp, []).append((row.speed_pp, row.speed_tg))
                    print(
                        f"round {round_ + 1} {kind}: "
                        + ", ".join(
                            f"PP {row.pp} S_PP {row.speed_pp:.1f} S_TG {row.speed_tg:.1f}"
                            for row in record.rows
                        )
                    )
        finally:
            run_cli("worker", "down", *image.args, env=env)
    print(
        f"{cores} cores: local runs -t {worker_threads}; RPC runs: worker -t {worker_threads}, head -t {head_threads}; "
        f"{rounds} rounds, alternated; medians"
    )
    print(
        f"{'PP':>5} {'S_PP local':>11} {'S_PP rpc':>9} {'ratio':>6} {'S_TG local':>11} {'S_TG rpc':>9} {'ratio':>6}"
    )
    for pp in sorted(speeds["local"]):
        local, rpc = speeds["local"][pp], speeds["rpc"][pp]
        pp_l, tg_l = statistics.median(s for s, _ in local), statistics.median(t for _, t in local)
        pp_r, tg_r = statistics.median(s for s, _ in rpc), statistics.median(t for _, t in rpc)
        print(
            f"{pp:>5} {pp_l:>11.2f} {pp_r:>9.2f} {pp_r / pp_l if pp_l else 0:>6.2f} "
            f"{tg_l:>11.2f} {tg_r:>9.2f} {tg_r / tg_l if tg_l else 0:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
