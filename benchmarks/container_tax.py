"""What the container costs: llama-batched-bench in the cpu target's image against the same source
built on the host with the same flags, same model, same threads, measured alternately in one run.
Then the image's rebuild times: nothing changed, one source file changed, against the cold build.

    python benchmarks/container_tax.py [--source DIR] [--repeats 3]

Goal: S_PP and S_TG ratios (container / native) >= 0.98. The host build leaves out GGML_VULKAN when
the host's Vulkan headers are too old for llama.cpp (Debian bookworm); the CPU backend is what runs.
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

from tests.assets import cache_dir, demo_model, llama_cpp_source

BENCH = [
    "-c",
    "2048",
    "-b",
    "512",
    "-ub",
    "512",
    "-npp",
    "512",
    "-ntg",
    "64",
    "-npl",
    "1",
    "-t",
    "2",
    "--output-format",
    "jsonl",
]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, env=env, check=False
    )


def rows(output: str) -> list[dict[str, float]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"pp"' in line]


def bench_once(argv: list[str]) -> dict[str, float] | None:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = rows(out.stdout + out.stderr)
    return found[0] if out.returncode == 0 and found else None


def host_vulkan_ok() -> bool:
    probe = subprocess.run(
        ["sh", "-c", "grep -q 'VK_HEADER_VERSION 3[0-9][0-9]' /usr/include/vulkan/vulkan_core.h"], check=False
    )
    return probe.returncode == 0


def native_build(source: Path, cmake_args: str) -> tuple[Path, float]:
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise SystemExit(
            "the native side needs cmake and a C++ compiler on the host (apt-get install cmake g++)"
        )
    build = cache_dir() / "native-build"
    flags = cmake_args.split()
    if not host_vulkan_ok():
        flags = [f for f in flags if f != "-DGGML_VULKAN=ON"] + ["-DGGML_VULKAN=OFF"]
    started = time.monotonic()
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), *flags], check=True, capture_output=True)
    subprocess.run(
        ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", "llama-batched-bench"],
        check=True,
        capture_output=True,
    )
    return build / "bin", time.monotonic() - started


def timed_build(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    out = cli("build", *args, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return time.monotonic() - started, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cold-seconds",
        type=float,
        default=None,
        help="a cold build time you measured (empty ccache, no layer cache); without it no ratio is printed",
    )
    opts = parser.parse_args()
    source = opts.source or llama_cpp_source()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_DATA_DIR"] = str(cache_dir() / "data")
    # The test suite's images, never the user's.
    env["ORCHESTRATOR_IMAGE_REPO"] = "step-flash-test"
    args = ["--target", "cpu", "--source", str(source), "--bases", "local"]
    plan = json.loads(cli("plan", *args, "--json", env=env).stdout)
    tag, cmake_args = plan["build"]["tag"], plan["build"]["build_args"]["CMAKE_ARGS"]
    timed_build(args, env)

    bin_dir, native_seconds = native_build(source, cmake_args)
    print(f"native build of llama-batched-bench: {native_seconds:.0f} s")
    model = demo_model()
    native = [str(bin_dir / "llama-batched-bench"), "-m", str(model), *BENCH]
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
        *BENCH,
    ]
    results: dict[str, list[dict[str, float]]] = {"native": [], "container": []}
    for _ in range(opts.repeats):
        for name, argv in (("native", native), ("container", container)):
            row = bench_once(argv) or bench_once(argv)  # a lost row (field notes) is retried once
            if row:
                results[name].append(row)
    for name in results:
        if not results[name]:
            raise SystemExit(f"{name}: no complete llama-batched-bench row in {opts.repeats} runs")
    print(f"llama-batched-bench {' '.join(BENCH[:-2])}, {opts.repeats} alternating runs, medians:")
    for metric in ("speed_pp", "speed_tg"):
        nat = statistics.median(r[metric] for r in results["native"])
        con = statistics.median(r[metric] for r in results["container"])
        print(f"  {metric}: native {nat:.1f} t/s, container {con:.1f} t/s, ratio {con / nat:.3f}")

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
    bump_tag = json.loads(cli("plan", *bump_args, "--json", env=env).stdout)["build"]["tag"]
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
