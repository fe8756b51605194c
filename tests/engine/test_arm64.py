"""arm64 images, proven on an amd64 machine and, weekly, on an arm64 one.

Every run on amd64 (no QEMU needed): the cpu target's arm64 build is cross-compiled (the Vulkan
Dockerfile's build stages run on the build machine's platform): its toolchain stage with Debian's cross
compiler and arm64 libraries, cmake configured with the plan's exact flags, and every arm64 CPU variant
and ggml's base library compiled as AArch64 code.

Opt-in, under QEMU on amd64 (`scripts/register-qemu.sh` registers the emulator) and natively on an arm64
machine (the arm64 job of .github/workflows/builds.yml sets both):
- STEP_FLASH_ARM64=1: the DGX Spark's CUDA path (21 to 40 minutes emulated on 2 cores, bases included):
  the arm64 bases (Debian for arm64 with NVIDIA's aarch64 CUDA wheels, image metadata saying arm64), the
  CUDA image's toolchain stage for arm64, llama.cpp configured with the dgx-spark plan's own flags, a few
  CUDA kernels compiled for 121a-real (cuobjdump: sm_121a) and every arm64 CPU variant compiled;
- STEP_FLASH_ARM64_IMAGE=1: the cpu target's whole arm64 image, built by `orchestrator build` (on amd64
  compiled there, its package steps emulated), whose llama-server answers a chat completion.
"""

from __future__ import annotations

import json
import os
import platform
import time

import pytest

from orchestrator.executors.assets import asset
from tests.assets import cache_dir, llama_cpp_source
from tests.integration import cli_env, docker, free_port, needs_docker, plan_on_local_bases, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]
emulated_cuda = pytest.mark.skipif(
    os.environ.get("STEP_FLASH_ARM64") != "1",
    reason="the arm64 CUDA build (under QEMU on amd64): STEP_FLASH_ARM64=1",
)

ARM64 = "linux/arm64"
# On an arm64 machine nothing is cross-compiled or emulated: the arm64 images build and run natively.
ON_ARM64 = platform.machine() in {"aarch64", "arm64"}
KERNELS = ("norm.cu.o", "scale.cu.o")
# ggml/src/CMakeLists.txt at the pinned commit, for arm64 Linux with GGML_CPU_ALL_VARIANTS.
ARM64_VARIANTS = (
    "armv8.0_1",
    "armv8.2_1",
    "armv8.2_2",
    "armv8.2_3",
    "armv8.6_1",
    "armv8.6_2",
    "armv9.2_1",
    "armv9.2_2",
)
# The source every CPU variant compiles with its own -march (ggml/src/ggml-cpu/CMakeLists.txt).
VARIANT_SOURCE = "ggml-cpu/arch/arm/quants.c.o"


def _args(target: str) -> list[str]:
    return ["--target", target, "--platform", ARM64, "--bases", "local", "--source", str(llama_cpp_source())]


def _timed(what: str, started: float) -> None:
    print(f"arm64: {what} in {time.monotonic() - started:.0f} s")


def _toolchain_stage(build: dict[str, object], tag: str) -> None:
    """The Dockerfile's own toolchain stage, with the plan's build arguments, for arm64."""
    args = build["build_args"]
    assert isinstance(args, dict)
    started = time.monotonic()
    stage = docker(
        "buildx",
        "build",
        "--platform",
        ARM64,
        "--target",
        "toolchain",
        "--load",
        "-t",
        tag,
        *(f"--build-arg={k}={args[k]}" for k in ("BUILD_BASE", "BUILD_PACKAGES")),
        "-f",
        str(asset(str(build["dockerfile"]))),
        str(asset("images/common")),
        timeout=3600,
    )
    assert stage.returncode == 0, stage.stderr[-3000:]
    _timed("toolchain stage", started)


def _compiled_variants(stdout: str) -> dict[str, str]:
    """'variant DIR MACHINE' lines -> {ggml-cpu-armv8.0_1: AArch64, ...}."""
    return {
        line.split()[1].split("/")[1].removesuffix(".dir"): line.split(" ", 2)[2]
        for line in stdout.splitlines()
        if line.startswith("variant ")
    }


def _in_toolchain(toolchain: str, cmake_args: str, show: str, steps: list[str], what: str) -> str:
    """Configure the source with the plan's flags in the toolchain stage's image, then run steps there;
    their output (configure lines matching `show` first)."""
    script = "; ".join(
        [
            "set -e",
            "cp -r /src-ro /src",
            "start=$(date +%s)",
            f"cmake -S /src -B /b {cmake_args} > /tmp/configure.log || (tail -40 /tmp/configure.log; exit 1)",
            'echo "configure: $(( $(date +%s) - start )) s"',
            f"grep -E '{show}' /tmp/configure.log || true",
            *steps,
        ]
    )
    started = time.monotonic()
    out = docker(
        "run", "--rm", "-v", f"{llama_cpp_source()}:/src-ro:ro", toolchain, "sh", "-c", script, timeout=7200
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    _timed(what, started)
    return out.stdout


def _assert_all_arm64_variants(stdout: str) -> None:
    variants = _compiled_variants(stdout)
    print(f"arm64 CPU variants: {sorted(variants)}")
    # The pinned llama.cpp builds eight arm64 variants for Linux and picks one at run time.
    assert set(variants) == {f"ggml-cpu-{v}" for v in ARM64_VARIANTS}, variants
    assert set(variants.values()) == {"AArch64"}, variants


_VARIANTS_SCRIPT = [
    "cd /b/ggml/src",
    "start=$(date +%s)",
    f"make {VARIANT_SOURCE} > /tmp/variants.log || (tail -40 /tmp/variants.log; exit 1)",
    'echo "cpu variants: $(( $(date +%s) - start )) s"',
    f"for o in CMakeFiles/ggml-cpu-*.dir/{VARIANT_SOURCE}; do "
    'echo "variant $o $(readelf -h $o | sed -n "s/.*Machine: *//p")"; done',
]


@pytest.mark.skipif(ON_ARM64, reason="cross-compiling from amd64: the amd64 suite's run")
def test_cpu_image_is_cross_compiled_for_arm64_without_emulation() -> None:
    # Only the amd64 bases: nothing here runs arm64 code.
    build = plan_on_local_bases("vulkan", "linux/amd64", *_args("cpu"))["build"]
    assert isinstance(build, dict)
    args = build["build_args"]
    assert (build["platform"], build["build_platform"]) == (ARM64, "linux/amd64")
    assert args["BUILD_BASE"] == "step-flash-base:vulkan-build"
    assert "-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc" in args["CMAKE_ARGS"]

    toolchain = "step-flash-test:vulkan-toolchain-cross-arm64"
    _toolchain_stage(build, toolchain)
    steps = [
        *_VARIANTS_SCRIPT,
        "start=$(date +%s)",
        "cmake --build /b --target ggml-base -j 2 > /tmp/base.log || (tail -40 /tmp/base.log; exit 1)",
        'echo "ggml-base: $(( $(date +%s) - start )) s"',
        "lib=$(find /b -name 'libggml-base.so*' -type f | head -n 1)",
        'echo "library $lib $(readelf -h $lib | sed -n "s/.*Machine: *//p")"',
    ]
    out = _in_toolchain(
        toolchain,
        args["CMAKE_ARGS"],
        "CMAKE_SYSTEM_PROCESSOR|Found Vulkan|Host compiler",
        steps,
        "configure, CPU variants and ggml-base, cross-compiled",
    )
    # The build machine's compiler builds the shader generator; the target's Vulkan library is linked.
    assert "CMAKE_SYSTEM_PROCESSOR: aarch64" in out
    assert "/usr/lib/aarch64-linux-gnu/libvulkan.so" in out
    assert "Host compiler: /usr/bin/gcc /usr/bin/g++" in out
    _assert_all_arm64_variants(out)
    assert any(line.startswith("library ") and line.endswith(" AArch64") for line in out.splitlines())


@pytest.fixture(scope="module")
def cuda_plan() -> dict[str, object]:
    started = time.monotonic()
    plan = plan_on_local_bases("cuda", ARM64, *_args("dgx-spark"))
    _timed("cuda bases (made, or kept when present) and the plan", started)
    return plan


@emulated_cuda
def test_arm64_bases_are_arm64_and_carry_the_toolkit(cuda_plan: dict[str, object]) -> None:
    build = cuda_plan["build"]
    assert isinstance(build, dict)
    args = build["build_args"]
    assert args["BUILD_BASE"] == "step-flash-base:cuda-build-arm64"
    assert args["RUNTIME_BASE"] == "step-flash-base:cuda-runtime-arm64"
    for tag in (args["BUILD_BASE"], args["RUNTIME_BASE"]):
        arch = docker("image", "inspect", tag, "--format", "{{.Os}}/{{.Architecture}}")
        assert arch.stdout.strip() == ARM64, arch.stdout + arch.stderr
        machine = docker("run", "--rm", tag, "uname", "-m")
        assert machine.stdout.strip() == "aarch64", machine.stderr
    nvcc = docker("run", "--rm", args["BUILD_BASE"], "sh", "-c", "nvcc --version")
    assert nvcc.returncode == 0, nvcc.stderr
    assert "release 13.0" in nvcc.stdout
    cublas = docker("run", "--rm", args["RUNTIME_BASE"], "sh", "-c", "ls /usr/local/cuda/lib/libcublas.so.*")
    assert cublas.returncode == 0 and "libcublas.so.13" in cublas.stdout, cublas.stdout + cublas.stderr


@emulated_cuda
def test_toolchain_stage_configure_kernels_and_cpu_variants(cuda_plan: dict[str, object]) -> None:
    build = cuda_plan["build"]
    assert isinstance(build, dict)
    args = build["build_args"]
    assert (build["platform"], build["build_platform"]) == (ARM64, ARM64)
    assert "-DCMAKE_CUDA_ARCHITECTURES=121a-real" in args["CMAKE_ARGS"]
    assert "-DGGML_CPU_ALL_VARIANTS=ON" in args["CMAKE_ARGS"]

    toolchain = "step-flash-test:cuda-toolchain-arm64"
    _toolchain_stage(build, toolchain)
    steps = [
        "start=$(date +%s)",
        "cd /b/ggml/src/ggml-cuda",
        *(f"make {k} > /dev/null" for k in KERNELS),
        'echo "kernels: $(( $(date +%s) - start )) s"',
        *(f"cuobjdump --list-elf CMakeFiles/ggml-cuda.dir/{k}" for k in KERNELS),
        f"cuobjdump -sass CMakeFiles/ggml-cuda.dir/{KERNELS[0]} | grep -m 3 -E 'code for|Function'",
        *_VARIANTS_SCRIPT,
    ]
    out = _in_toolchain(
        toolchain,
        args["CMAKE_ARGS"],
        "CUDA Toolkit found|Including CPU backend|ARM feature",
        steps,
        "configure, kernels and CPU variants",
    )
    assert "CUDA Toolkit found" in out
    elves = [line for line in out.splitlines() if line.startswith("ELF file")]
    assert len(elves) >= len(KERNELS) and all("sm_121a" in line for line in elves), out
    assert "code for sm_121a" in out
    _assert_all_arm64_variants(out)


@pytest.mark.skipif(
    os.environ.get("STEP_FLASH_ARM64_IMAGE") != "1",
    reason="an arm64 image's package steps and server (under QEMU on amd64): STEP_FLASH_ARM64_IMAGE=1",
)
def test_cpu_image_for_arm64_answers() -> None:
    started = time.monotonic()
    plan_on_local_bases("vulkan", ARM64, *_args("cpu"))
    _timed("vulkan bases (made, or kept when present)", started)
    env = cli_env(
        ORCHESTRATOR_MODELS_DIR=str(cache_dir() / "models-arm64"),
        ORCHESTRATOR_WAIT_TIMEOUT="900",
        ORCHESTRATOR_PROJECT="sfo-test-arm64",
    )
    started = time.monotonic()
    built = run_cli("build", *_args("cpu"), env=env, timeout=5 * 3600)
    assert built.returncode == 0, built.stderr + built.stdout[-3000:]
    _timed(f"cpu image ({built.stdout.strip()})", started)
    plan = json.loads(run_cli("plan", *_args("cpu"), "--json", env=env).stdout)
    tag = plan["build"]["tag"]
    assert tag.endswith("-arm64-0c1e570")
    arch = docker("image", "inspect", tag, "--format", "{{.Os}}/{{.Architecture}}")
    assert arch.stdout.strip() == ARM64

    port = free_port()
    started = time.monotonic()
    up = run_cli("up", *_args("cpu"), "--port", str(port), env=env, timeout=1800)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        _timed("up (model load)", started)
        from openai import OpenAI

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=900)
        started = time.monotonic()
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            max_tokens=32,
            temperature=0,
        )
        _timed("one chat completion", started)
        answer = reply.choices[0].message.content or ""
        print(f"arm64 answer: {answer!r}")
        assert "Paris" in answer
        # The server's process: arm64's llama-server (run by QEMU on amd64), with an armv* CPU variant
        # loaded (the server does not log which; its memory map shows it).
        (name,) = docker(
            "ps",
            "--filter",
            "label=com.docker.compose.project=sfo-test-arm64",
            "--filter",
            "label=com.docker.compose.service=llama-server",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        inside = docker(
            "exec",
            name,
            "sh",
            "-c",
            "readlink /proc/1/exe; grep -o 'libggml-cpu-[^ ]*[.]so' /proc/1/maps | sort -u",
        )
        print(f"arm64 server process: {inside.stdout.split()}")
        program, *variants = inside.stdout.split()
        expected = "llama-server" if ON_ARM64 else "qemu-aarch64"
        assert expected in program, inside.stdout + inside.stderr
        assert len(variants) == 1 and variants[0].startswith("libggml-cpu-armv"), inside.stdout
    finally:
        run_cli("down", *_args("cpu"), env=env)
