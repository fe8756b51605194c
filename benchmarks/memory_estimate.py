"""How close the memory estimate is to what llama.cpp allocates, for each program as it allocates: each
model is loaded by llama-batched-bench and by llama-server in the cpu target's image, and their load logs
(KV cache sizes, compute buffer) are set beside the estimates computed from the same GGUF's metadata.

    python benchmarks/memory_estimate.py
    python benchmarks/memory_estimate.py --smoke   # one tiny model, one workload: the script works

Models: gemma-3-270m and tiny synthetic GGUFs made with the gguf package (dense llama, sliding-window
gemma3, mixture-of-experts qwen3moe), which the formula was fitted on; and SmolLM2-135M-Instruct (the
demo model), which it was not. llama-server runs with its default 4 slots (one logits row each);
llama-batched-bench keeps a logits row per token. Goal: every ratio within 0.95-1.05.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.app.inputs import Request, plan_for
from orchestrator.core.memory import MIB, Reported, Workload, estimate, parse_load_log
from orchestrator.core.memory_plan import SERVER_SLOTS, server_outputs
from orchestrator.executors.docker import DockerEngine
from orchestrator.executors.engine import CommandFailed
from orchestrator.models.gguf import read_model
from orchestrator.models.local import resolve_model, write_demo_model
from tests.assets import demo_model
from tests.integration import BuiltImage, build_cpu_image
from tests.tiny_gguf import Shape, write_tiny

# Short contexts, where the logits are the largest tensor, and long ones, where the attention masks are.
WORKLOADS = (
    Workload(ctx=4096, batch=512, ubatch=512),
    Workload(ctx=8192, batch=512, ubatch=512),
    Workload(ctx=16384, batch=2048, ubatch=1024, cache_k="q8_0", cache_v="q8_0"),
    Workload(ctx=32768, batch=2048, ubatch=2048, cache_k="q8_0", cache_v="q8_0"),
)
# One width for all three, so only the layer kind differs; 30K words make the logits as large as the masks
# of the short workloads.
_BASE = Shape(
    n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_layer=4, n_ff=1536, extra_vocab=30000, context=65536
)
TINY = {
    "dense (llama)": ("dense", _BASE),
    "sliding window (gemma3)": ("swa", replace(_BASE, n_head_kv=4, n_layer=12, window=512)),
    "mixture of experts (qwen3moe)": ("moe", replace(_BASE, n_expert=16, n_expert_used=4, n_ff_exp=256)),
}
# How long llama-server is given to load and print its sizes before it is stopped.
SERVER_SECONDS = 15


def _plan_container(image: BuiltImage, model: Path) -> object:
    flags = {"target": "cpu", "source": str(image.source), "bases": "local", "model": str(model)}
    return plan_for(Request(flags)).container


def _kv_flags(work: Workload) -> list[str]:
    return ["-c", str(work.ctx), "-b", str(work.batch), "-ub", str(work.ubatch), "-ctk", work.cache_k,
            "-ctv", work.cache_v, "-fa", "on", "-t", "2"]  # fmt: skip


def measured(engine: DockerEngine, image: BuiltImage, model: Path, work: Workload, program: str) -> Reported:
    container = _plan_container(image, model)
    common = ["-m", f"/models/{model.name}", *_kv_flags(work)]
    if program == "server":
        # llama-server logs its sizes (at verbosity 4) while loading, then serves; it is stopped after.
        argv = [
            "timeout",
            "-s",
            "INT",
            str(SERVER_SECONDS),
            "llama-server",
            *common,
            "--port",
            "8080",
            "-lv",
            "4",
        ]
    else:
        # The sizes are logged at info level, which the bench tools print only when verbose.
        argv = ["llama-batched-bench", *common, "-npp", "8", "-ntg", "1", "-npl", "1", "-v"]
    lines: list[str] = []
    try:
        lines.extend(engine.stream(container, argv, {}))  # type: ignore[arg-type]
    except CommandFailed:
        if program != "server":
            raise SystemExit(f"{model.name}: llama-batched-bench failed; last lines: {lines[-3:]}") from None
    return parse_load_log(lines)


def ratio(estimated: float, actual: float) -> str:
    return f"{estimated / actual:.3f}" if actual else "n/a"


def _smollm2(folder: Path) -> Path:
    spec = resolve_model(None, "smollm2-135m-instruct", folder)
    write_demo_model(spec, folder / "cache")
    return spec.path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the tiny dense model at the first workload only: the script works",
    )
    opts = parser.parse_args()
    engine = DockerEngine()
    image = build_cpu_image()
    os.environ.update(image.env)
    tiny = dict(list(TINY.items())[:1]) if opts.smoke else TINY
    workloads = WORKLOADS[:1] if opts.smoke else WORKLOADS
    with tempfile.TemporaryDirectory() as tmp:
        models = (
            {}
            if opts.smoke
            else {"gemma-3-270m": demo_model(), "SmolLM2-135M (not fitted)": _smollm2(Path(tmp))}
        )
        for label, (kind, shape) in tiny.items():
            folder = Path(tmp) / kind
            folder.mkdir()
            models[label] = write_tiny(folder / f"tiny-{kind}.gguf", kind, shape)  # type: ignore[arg-type]
        header = (
            f"{'model':28} {'program':7} {'workload':42} {'component':9} {'estimate':>10} {'llama.cpp':>10} "
            f"{'ratio':>7}"
        )
        print(header)
        print("-" * len(header))
        worst = 1.0
        for label, path in models.items():
            gguf = read_model(path)
            for base in workloads:
                for program in ("bench", "server"):
                    work = (
                        replace(base, n_seq=SERVER_SLOTS, outputs=server_outputs(SERVER_SLOTS, base.batch, 0))
                        if program == "server"
                        else base
                    )
                    est = estimate(gguf.arch, gguf.weights_bytes, work)
                    got = measured(engine, image, path, work, program)
                    parts = [
                        ("KV full", est.kv / MIB, got.kv),
                        ("KV swa", est.kv_swa / MIB, got.kv_swa),
                        ("compute", est.compute / MIB, got.compute),
                    ]
                    for name, mine, theirs in parts:
                        if not mine and not theirs:
                            continue
                        print(
                            f"{label:28} {program:7} {work.describe():42} {name:9} {mine:10.2f} {theirs:10.2f} "
                            f"{ratio(mine, theirs):>7}",
                            flush=True,
                        )
                        if theirs:
                            worst = max(worst, abs(mine / theirs - 1) + 1)
        print(f"\nworst deviation: {100 * (worst - 1):.1f}% (goal: within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
