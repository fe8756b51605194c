"""The publisher's README, line by line: each command it types by hand is what a plan produces.

The strings below are the flags from the publisher's README, copied as facts.
"""

from __future__ import annotations

import shlex

import pytest

from orchestrator.core.catalogue import CATALOGUE, cmake_flags
from orchestrator.core.plan.build_args import cmake_args
from orchestrator.core.sources import NAMED_SOURCES
from tests.planning import fixed_plan

SEED_CMAKE = {
    "mac-studio": "-DCMAKE_BUILD_TYPE=Release -DGGML_METAL=ON -DGGML_ACCELERATE=ON -DLLAMA_BUILD_EXAMPLES=ON "
    "-DLLAMA_BUILD_COMMON=ON -DGGML_LTO=ON",
    "dgx-spark": "-DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DGGML_CUDA_GRAPHS=ON -DLLAMA_CURL=OFF "
    "-DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_COMMON=ON",
    "ryzen-ai-max": "-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_OPENMP=ON -DGGML_VULKAN=ON",
}
SEED_RUN = '-c 16384 -b 2048 -ub 2048 -fa on --temp 1.0 -p "What\'s your name?"'
SEED_BENCH_16K = "-c 16384 -b 2048 -ub 2048 -npp 0,2048,8192,16384 -ntg 128 -npl 1"
SEED_BENCH_LONG = {
    "mac-studio": (
        "",
        "-c 262150 -b 2048 -ub 1024 -npp 0,2048,8192,16384,32768,65536,262144 -ntg 128 -npl 1",
    ),
    "dgx-spark": (
        "GGML_CUDA_ENABLE_UNIFIED_MEMORY=1",
        "-c 262150 -b 2048 -ub 1024 -npp 0,2048,8192,16384,32768,65536,262144 -ntg 128 -npl 1 "
        "-ctk q8_0 -ctv q8_0",
    ),
    "ryzen-ai-max": (
        "",
        "-c 65540 -b 2048 -ub 2048 -npp 0,2048,8192,16384,32768,65536 -ntg 128 -npl 1 --mmap -t 32",
    ),
}


# What we add after the publisher's benchmark arguments: the log level that names the devices, and rows
# as JSON lines.
OURS = " -lv 4 --output-format jsonl"


def _args(argv: tuple[str, ...]) -> str:
    return shlex.join(argv[3:])  # after the binary and -m MODEL


@pytest.mark.parametrize("target", sorted(SEED_CMAKE))
def test_build_flags_start_with_the_publishers(target: str) -> None:
    t = CATALOGUE[target]
    assert cmake_args(cmake_flags(t, t.profile("default"))).startswith(SEED_CMAKE[target])


@pytest.mark.parametrize("target", sorted(SEED_CMAKE))
def test_basic_inference_is_the_publishers(target: str) -> None:
    plan = fixed_plan(target, "default")
    assert plan.run.argv[1] == "-m"
    assert _args(plan.run.argv).startswith(shlex.join(shlex.split(SEED_RUN)))


@pytest.mark.parametrize("target", sorted(SEED_CMAKE))
def test_16k_benchmark_is_the_publishers(target: str) -> None:
    (bench,) = fixed_plan(target, "default").benches
    assert _args(bench.command.argv) == SEED_BENCH_16K + OURS
    assert bench.rows == 4


@pytest.mark.parametrize("target", sorted(SEED_BENCH_LONG))
def test_long_benchmark_is_the_publishers(target: str) -> None:
    env, args = SEED_BENCH_LONG[target]
    # The publisher's fork spells mmap as --mmap; the pinned upstream spells it --load-mode mmap.
    (bench,) = fixed_plan(target, "long-context", source=NAMED_SOURCES["stepfun-fork"]).benches
    assert _args(bench.command.argv) == args + OURS
    if env:
        key, value = env.split("=")
        assert bench.command.env[key] == value


def test_long_context_remedies() -> None:
    dgx = fixed_plan("dgx-spark", "long-context")
    assert ("GGML_CUDA_FORCE_MMQ", "ON") in dgx.cmake_flags
    assert dgx.server.env["GGML_CUDA_ENABLE_UNIFIED_MEMORY"] == "1"
    assert "-ctk q8_0 -ctv q8_0" in dgx.server.shell()
    assert [h.name for h in dgx.hooks] == ["drop-page-cache"]
    assert dgx.hooks[0].argv == ("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches")
    mac = fixed_plan("mac-studio", "long-context")
    assert [h.shell() for h in mac.hooks] == ["sudo sysctl iogpu.wired_limit_mb=122880"]
    assert any("76K" in note for note in mac.notes)
    assert "--load-mode mmap -t 32" in fixed_plan("ryzen-ai-max", "long-context").server.shell()
