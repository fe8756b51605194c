"""Speculative decoding on this machine's CPU, measured through the server: each case runs
`orchestrator bench serve`, which starts the cpu image's llama-server with speculation off and then on,
sends the same prompt set (short chat, code edit, long-context question) at temperature 0 with 1 and 4
clients, and compares them in the same run.

    python benchmarks/speculative.py
    python benchmarks/speculative.py --smoke     # the tiny step35 case with one client: the script works

Cases: a tiny step35 GGUF with 2 MTP heads (random weights: its acceptance says nothing about a trained
model's; it shows the path works and what drafting costs), gemma-3-270m and SmolLM2-135M with n-gram
drafting (ngram-mod: no extra weights). The speed-up that matters is on the hardware, with the real
model: `orchestrator bench serve --target dgx-spark --spec mtp:2` there (docs/tasks/speculative.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.models.local import resolve_model, write_demo_model
from tests.assets import demo_model
from tests.integration import build_cpu_image, run_cli
from tests.tiny_gguf import write_tiny_step35


def _case(
    image_args: tuple[str, ...], env: dict[str, str], model: Path, spec: str, clients: str
) -> dict[str, object]:
    done = run_cli(
        "bench", "serve", "--model", str(model), "--spec", spec, "--clients", clients, "--json",
        "--results", str(model.parent / "results"), *image_args, env=env, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{model.name} {spec}: {done.stderr.strip() or done.stdout.strip()}")
    data: dict[str, object] = json.loads(done.stdout)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the tiny step35 case with one client: the script works"
    )
    opts = parser.parse_args()
    clients = "1" if opts.smoke else "1,4"
    image = build_cpu_image()
    env = {**image.env, "ORCHESTRATOR_PROJECT": "sfo-bench-spec", "ORCHESTRATOR_WAIT_TIMEOUT": "300"}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: Path(tmp) / name for name in ("step35", "gemma", "smollm2")}
        for folder in folders.values():
            folder.mkdir()
        step35 = write_tiny_step35(folders["step35"] / "tiny-step35.gguf", "combined")
        gemma = folders["gemma"] / "gemma-3-270m-Q4_K_M.gguf"
        shutil.copyfile(demo_model(), gemma)
        smollm2 = resolve_model(None, "smollm2-135m-instruct", folders["smollm2"])
        write_demo_model(smollm2, folders["smollm2"] / "cache")
        cases = [
            ("tiny step35, 2 MTP heads", step35, "mtp"),
            ("gemma-3-270m", gemma, "ngram-mod"),
            ("SmolLM2-135M", smollm2.path, "ngram-mod"),
        ]
        header = (
            f"{'model':26} {'speculation':11} {'clients':>7} {'off t/s':>9} {'on t/s':>9} {'ratio':>6} "
            f"{'aggregate':>9} {'accepted':>9} {'identical':>9}"
        )
        print(header)
        print("-" * len(header))
        for label, model, spec in cases[:1] if opts.smoke else cases:
            data = _case(image.args, env, model, spec, clients)
            # One entry per setting measured against off: `--spec mtp` sweeps mtp:1 to mtp:<heads>.
            for setting in data["settings"]:  # type: ignore[attr-defined]
                for row in setting["rows"]:
                    acceptance = "-" if row["acceptance"] is None else f"{row['acceptance']:.0%}"
                    print(
                        f"{label:26} {setting['on']:11} {row['clients']:>7} {row['decode_off']:>9.2f} "
                        f"{row['decode_on']:>9.2f} {row['ratio'] or 0:>6.2f} {row['aggregate_ratio'] or 0:>9.2f} "
                        f"{acceptance:>9} {row['identical']}/{row['compared']:<7}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
