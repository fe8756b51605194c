"""How close the memory estimate is to what llama.cpp allocates: each model is loaded by llama-batched-bench
in the cpu target's image and its load log (KV cache sizes, compute buffer) is set beside the estimate
computed from the same GGUF's metadata, per component.

    python benchmarks/memory_estimate.py

Models: gemma-3-270m (the demo model) and tiny synthetic GGUFs made with the gguf package: dense (llama),
sliding-window (gemma3) and mixture-of-experts (qwen3moe). Goal: every ratio within 0.95-1.05.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.app.inputs import plan_from_flags
from orchestrator.core.memory import MIB, Reported, Workload, estimate, parse_load_log
from orchestrator.executors.docker import CommandFailed, Engine
from orchestrator.models.gguf import read_model
from tests.assets import demo_model
from tests.integration import BuiltImage, build_cpu_image
from tests.tiny_gguf import Shape, write_tiny

# Short contexts, where the logits are the largest tensor, and long ones, where the attention masks are.
WORKLOADS = (
    Workload(ctx=4096, batch=512, ubatch=512),
    Workload(ctx=16384, batch=2048, ubatch=1024, cache_k="q8_0", cache_v="q8_0"),
    Workload(ctx=65536, batch=2048, ubatch=512),
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


def measured(engine: Engine, image: BuiltImage, model: Path, work: Workload) -> Reported:
    flags = {"target": "cpu", "source": str(image.source), "bases": "local", "model": str(model)}
    plan = plan_from_flags(flags)
    assert plan.container is not None
    argv = [
        plan.benches[0].command.argv[0],
        "-m",
        f"/models/{model.name}",
        "-c",
        str(work.ctx),
        "-b",
        str(work.batch),
        "-ub",
        str(work.ubatch),
        "-ctk",
        work.cache_k,
        "-ctv",
        work.cache_v,
        "-fa",
        "on",
        "-npp",
        "8",
        "-ntg",
        "1",
        "-npl",
        "1",
        "-t",
        "2",
        # The sizes are logged at info level, which the tools print only when verbose.
        "-v",
    ]
    lines: list[str] = []
    try:
        lines.extend(engine.stream(plan.container, argv, {}))
    except CommandFailed as failed:
        raise SystemExit(f"{model.name}: {failed}") from None
    return parse_load_log(lines)


def ratio(estimated: float, actual: float) -> str:
    return f"{estimated / actual:.3f}" if actual else "n/a"


def main() -> int:
    engine = Engine()
    image = build_cpu_image()
    os.environ.update(image.env)
    with tempfile.TemporaryDirectory() as tmp:
        models = {"gemma-3-270m": demo_model()}
        for label, (kind, shape) in TINY.items():
            folder = Path(tmp) / kind
            folder.mkdir()
            models[label] = write_tiny(folder / f"tiny-{kind}.gguf", kind, shape)  # type: ignore[arg-type]
        header = (
            f"{'model':32} {'workload':44} {'component':9} {'estimate':>10} {'llama.cpp':>10} {'ratio':>7}"
        )
        print(header)
        print("-" * len(header))
        worst = 1.0
        for label, path in models.items():
            gguf = read_model(path)
            for work in WORKLOADS:
                est = estimate(gguf.arch, gguf.weights_bytes, work)
                got = measured(engine, image, path, work)
                parts = [
                    ("KV full", est.kv / MIB, got.kv),
                    ("KV swa", est.kv_swa / MIB, got.kv_swa),
                    ("compute", est.compute / MIB, got.compute),
                ]
                for name, mine, theirs in parts:
                    if not mine and not theirs:
                        continue
                    print(
                        f"{label:32} {work.describe():44} {name:9} {mine:10.2f} {theirs:10.2f} {ratio(mine, theirs):>7}"
                    )
                    if theirs:
                        worst = max(worst, abs(mine / theirs - 1) + 1)
        print(f"\nworst deviation: {100 * (worst - 1):.1f}% (goal: within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
