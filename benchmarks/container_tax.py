"""What the image costs (or gains) against the host's own build: llama-batched-bench in the cpu target's
image against the same source built on the host exactly as the cpu target's --native build is
(`orchestrator build --target cpu --native`: its flags, and the environment its scripts run it in), same
model, same threads, measured alternately in one run. Then the image's rebuild times: nothing changed,
one source file changed, against the cold build.

    python benchmarks/container_tax.py [--source DIR] [--repeats 3] [--speeds-only]
    python benchmarks/container_tax.py --smoke     # tiny sizes, one run each, no rebuild timings

The two builds differ where the host allows: the image carries every CPU variant and picks this CPU's
at run time (on a Xeon with AMX, its AMX kernels), while the --native build compiles for this CPU
without AMX (the cpu target's native flags say why). Goal: S_PP and S_TG ratios (image / native) >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.plan.launch_agent import library_env
from tests.assets import cache_dir, demo_model, llama_cpp_source
from tests.integration import cli_env, run_cli


def bench_flags(*, npp: int, ntg: int, ctx: int) -> list[str]:
    return ["-c", str(ctx), "-b", "512", "-ub", "512", "-npp", str(npp), "-ntg", str(ntg), "-npl", "1",
            "-t", "2", "--output-format", "jsonl"]  # fmt: skip


FULL = {"npp": 512, "ntg": 64, "ctx": 2048}
SMOKE = {"npp": 32, "ntg": 4, "ctx": 256}


def rows(output: str) -> list[dict[str, float]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"pp"' in line]


def bench_once(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float] | None:
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    found = rows(out.stdout + out.stderr)
    return found[0] if out.returncode == 0 and found else None


def native_side(source: Path, env: dict[str, str]) -> tuple[Path, dict[str, str], float, str]:
    """llama-batched-bench of the cpu target's --native build of source (built unless up to date), the
    environment its scripts run the build's programs in, the build's seconds and what it said."""
    args = ["--target", "cpu", "--native", "--source", str(source)]
    plan = json.loads(run_cli("plan", *args, "--json", env=env).stdout)
    seconds, said = timed_build(args, env)
    prefix = plan["build"]["prefix"]
    return Path(prefix) / "bin" / "llama-batched-bench", {**os.environ, **library_env(prefix)}, seconds, said


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def timed_build(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    out = run_cli("build", *args, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return time.monotonic() - started, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cold-seconds",
        type=float,
        default=None,
        help="a cold build time you measured (empty ccache, no layer cache); without it no ratio is printed",
    )
    parser.add_argument(
        "--speeds-only", action="store_true", help="the speed comparison without the rebuild timings"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one run each, no rebuild timings: the script works"
    )
    opts = parser.parse_args()
    repeats = 1 if opts.smoke else opts.repeats
    bench = bench_flags(**(SMOKE if opts.smoke else FULL))
    source = opts.source or llama_cpp_source()
    # The test suite's images, data directory and settings, never the user's.
    env = cli_env()
    args = ["--target", "cpu", "--source", str(source), "--bases", "local"]
    plan = json.loads(run_cli("plan", *args, "--json", env=env).stdout)
    tag = plan["build"]["tag"]
    timed_build(args, env)

    native_bench, native_env, native_seconds, said = native_side(source, env)
    print(f"native build (orchestrator build --target cpu --native): {native_seconds:.0f} s ({said})")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    model = demo_model()
    native = [str(native_bench), "-m", str(model), *bench]
    container = [
        "docker",
        "run",
        "--rm",
        "-v",
        f"{model.parent}:/models:ro",
        "--cpus",
        str(os.cpu_count() or 2),
        tag,
        "llama-batched-bench",
        "-m",
        f"/models/{model.name}",
        *bench,
    ]
    runs: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "native": (native, native_env),
        "container": (container, None),
    }
    results: dict[str, list[dict[str, float]]] = {"native": [], "container": []}
    print(f"llama-batched-bench {' '.join(bench[:-2])}, {repeats} alternating runs:")
    for n in range(repeats):
        for name, (argv, run_env) in runs.items():
            # A lost row (field notes) is retried once.
            row = bench_once(argv, run_env) or bench_once(argv, run_env)
            if row:
                results[name].append(row)
                print(f"  run {n + 1} {name}: S_PP {row['speed_pp']:.1f} t/s, S_TG {row['speed_tg']:.1f} t/s")
    for name in results:
        if not results[name]:
            raise SystemExit(f"{name}: no complete llama-batched-bench row in {repeats} runs")
    print("medians:")
    for metric in ("speed_pp", "speed_tg"):
        nat = statistics.median(r[metric] for r in results["native"])
        con = statistics.median(r[metric] for r in results["container"])
        print(f"  {metric}: native {nat:.1f} t/s, container {con:.1f} t/s, ratio {con / nat:.3f}")
    if opts.smoke or opts.speeds_only:
        return

    unchanged, said = timed_build([*args, "--rebuild"], env)
    print(f"rebuild, nothing changed (--rebuild, BuildKit cache): {unchanged:.1f} s")
    skipped, said = timed_build(args, env)
    print(f"build, nothing changed (skipped: {'up to date' in said}): {skipped:.1f} s")
    bumped = cache_dir() / "bumped-source"
    shutil.rmtree(bumped, ignore_errors=True)
    shutil.copytree(source, bumped, copy_function=os.link, ignore=ignore_build_outputs)
    changed = bumped / "tools" / "batched-bench" / "batched-bench.cpp"
    text = changed.read_text()
    changed.unlink()  # break the hard link before editing
    changed.write_text(text + f"\n// source bump {time.time()}\n")
    bump_args = ["--target", "cpu", "--source", str(bumped), "--bases", "local"]
    bump_tag = json.loads(run_cli("plan", *bump_args, "--json", env=env).stdout)["build"]["tag"]
    bump_seconds, _ = timed_build(bump_args, env)
    subprocess.run(["docker", "rmi", "-f", bump_tag], capture_output=True, check=False)
    shutil.rmtree(bumped, ignore_errors=True)
    print(f"rebuild after a one-file source bump (ccache): {bump_seconds:.0f} s")
    if opts.cold_seconds is None:
        # A ratio needs both sides measured: the build history cannot say whether its first entry was
        # cold (empty ccache, no layer cache), so nothing is divided by it.
        print(
            "cold build: not measured in this run, so no ratio to it is printed; time a cold build "
            "yourself and pass --cold-seconds S"
        )
        return
    cold = opts.cold_seconds
    print(f"cold build of {tag}: {cold:.0f} s (given)")
    print(
        f"ratios to cold: no-change rebuild {unchanged / cold:.3f}, skipped build {skipped / cold:.4f}, "
        f"source bump {bump_seconds / cold:.3f}"
    )


def ignore_build_outputs(directory: str, names: list[str]) -> set[str]:
    from orchestrator.executors.images import ignore_build_outputs as ignore

    return ignore(directory, names)


if __name__ == "__main__":
    main()
