"""What spreading a model over RPC workers costs, measured here on loopback: `orchestrator bench` (the
publisher's llama-batched-bench) with gemma-3-270m on this machine alone, then through two rpc-server
workers on 127.0.0.1 started with `orchestrator worker up`, in the same run; S_PP and S_TG side by side
and their ratios.

    python benchmarks/rpc_overhead.py

Loopback has no wire, so this is the protocol's own cost (serialising each graph, one round trip per
step); over a real link add its latency and bandwidth (README, Two machines).
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.app.results import read_records
from tests.assets import demo_model
from tests.integration import build_cpu_image, run_cli

SETS = ("--npp", "128,512", "--ntg", "32", "--npl", "1")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    image = build_cpu_image()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir(mode=0o755)
        model = models / "gemma-3-270m-Q4_K_M.gguf"
        shutil.copyfile(demo_model(), model)
        workers = {f"sfo-bench-rpc-{i}": _port() for i in (1, 2)}
        try:
            for project, port in workers.items():
                env = {**image.env, "ORCHESTRATOR_PROJECT": project}
                done = run_cli("worker", "up", "--listen", f"127.0.0.1:{port}", *image.args, env=env)
                if done.returncode != 0:
                    raise SystemExit(done.stderr.strip())
            rpc = ",".join(f"127.0.0.1:{p}" for p in workers.values())
            speeds = {}
            for label, extra in (("local", ()), ("2 loopback workers", ("--rpc", rpc))):
                results = Path(tmp) / label.replace(" ", "-")
                done = run_cli(
                    "bench", "--model", str(model), *SETS, "--results", str(results), *extra, *image.args,
                    env={**image.env, "ORCHESTRATOR_PROJECT": "sfo-bench-rpc"}, timeout=3600,
                )  # fmt: skip
                if done.returncode != 0:
                    raise SystemExit(f"{label}: {done.stderr.strip()}")
                (record,) = read_records(results)
                speeds[label] = {row.pp: (row.speed_pp, row.speed_tg) for row in record.rows}
        finally:
            for project in workers:
                run_cli("worker", "down", *image.args, env={**image.env, "ORCHESTRATOR_PROJECT": project})
    local, spread = speeds["local"], speeds["2 loopback workers"]
    print(
        f"{'PP':>5} {'S_PP local':>11} {'S_PP rpc':>9} {'ratio':>6} {'S_TG local':>11} {'S_TG rpc':>9} {'ratio':>6}"
    )
    for pp in sorted(local):
        (pp_l, tg_l), (pp_r, tg_r) = local[pp], spread[pp]
        print(
            f"{pp:>5} {pp_l:>11.2f} {pp_r:>9.2f} {pp_r / pp_l if pp_l else 0:>6.2f} "
            f"{tg_l:>11.2f} {tg_r:>9.2f} {tg_r / tg_l if tg_l else 0:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
