"""CUDA for DGX Spark (GB10, sm_121a), checked without a GPU.

In every run: the CUDA bases made from NVIDIA's wheels, llama.cpp configured with the dgx-spark plan's
own cmake flags, and a few CUDA kernels compiled and their SASS inspected with cuobjdump.
With STEP_FLASH_CUDA_FULL=1 (the cuda job of .github/workflows/builds.yml sets it, weekly): the whole
image is built (about half an hour on 2 cores) and must start without a GPU and answer on its CPU backend.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.assets import demo_model, llama_cpp_source
from tests.integration import cli_env, docker, model_mount, needs_docker, plan_on_local_bases, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

KERNELS = ("norm.cu.o", "scale.cu.o")


def _dgx_args() -> list[str]:
    """The DGX Spark image, built for this x86 machine (same sm_121a device code) from local bases."""
    return [
        "--target",
        "dgx-spark",
        "--platform",
        "linux/amd64",
        "--bases",
        "local",
        "--source",
        str(llama_cpp_source()),
    ]


@pytest.fixture(scope="module")
def cuda_plan() -> dict[str, object]:
    return plan_on_local_bases("cuda", "linux/amd64", *_dgx_args())


def test_kernels_compile_for_gb10(cuda_plan: dict[str, object]) -> None:
    build = cuda_plan["build"]
    assert isinstance(build, dict)
    args = build["build_args"]
    assert "-DCMAKE_CUDA_ARCHITECTURES=121a-real" in args["CMAKE_ARGS"]
    script = (
        "set -e; cp -r /src-ro /src; "
        f"cmake -S /src -B /b {args['CMAKE_ARGS']} > /tmp/configure.log || (tail -30 /tmp/configure.log; exit 1); "
        "cd /b/ggml/src/ggml-cuda; "
        + "; ".join(f"make {k} > /dev/null" for k in KERNELS)
        + "; "
        + "; ".join(f"cuobjdump --list-elf CMakeFiles/ggml-cuda.dir/{k}" for k in KERNELS)
        + "; "
        f"cuobjdump -sass CMakeFiles/ggml-cuda.dir/{KERNELS[0]} | grep -m 3 -E 'code for|Function'"
    )
    out = docker(
        "run",
        "--rm",
        "-v",
        f"{llama_cpp_source()}:/src-ro:ro",
        args["BUILD_BASE"],
        "sh",
        "-c",
        script,
        timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    elves = [line for line in out.stdout.splitlines() if line.startswith("ELF file")]
    assert len(elves) >= len(KERNELS)
    assert all("sm_121a" in line for line in elves), out.stdout
    assert "code for sm_121a" in out.stdout


@pytest.mark.skipif(
    os.environ.get("STEP_FLASH_CUDA_FULL") != "1", reason="full CUDA build: STEP_FLASH_CUDA_FULL=1"
)
def test_full_image_serves_on_cpu_without_a_gpu(cuda_plan: dict[str, object], tmp_path: Path) -> None:
    env = cli_env()
    args = _dgx_args()
    started = time.monotonic()
    built = run_cli("build", *args, env=env, timeout=7200)
    assert built.returncode == 0, built.stderr + built.stdout
    print(f"full CUDA image: {built.stdout.strip()} ({time.monotonic() - started:.0f} s in this test)")
    build = cuda_plan["build"]
    assert isinstance(build, dict)
    tag = str(build["tag"])

    copied = docker(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/out",
        "--user",
        "0",
        tag,
        "sh",
        "-c",
        "cp /opt/llama/libggml-cuda.so /out/",
    )
    assert copied.returncode == 0, copied.stderr
    elves = docker(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/lib-out:ro",
        str(build["build_args"]["BUILD_BASE"]),
        "cuobjdump",
        "--list-elf",
        "/lib-out/libggml-cuda.so",
    )
    assert elves.returncode == 0, elves.stderr
    archs = {line.rsplit(".", 2)[-2] for line in elves.stdout.splitlines() if line.startswith("ELF file")}
    print(f"architectures in libggml-cuda.so: {sorted(archs)}")
    assert archs == {"sm_121a"}

    name = f"step-flash-cuda-test-{os.getpid()}"
    model = demo_model()
    run = docker(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        "127.0.0.1::8080",
        *model_mount(model),
        tag,
        "llama-server",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "-m",
        f"/models/{model.name}",
        "-c",
        "512",
        "--chat-template",
        "gemma",
        "-v",
    )
    assert run.returncode == 0, run.stderr
    try:
        port = docker("port", name, "8080").stdout.strip().rsplit(":", 1)[1]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        body = json.dumps({"prompt": "The sky is", "n_predict": 8}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/completion", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        assert answer["tokens_predicted"] > 0
        logs = docker("logs", name)
        text = logs.stdout + logs.stderr
        # No driver here: the CUDA plugin stays unloaded and the CPU plugin for this processor serves.
        assert "loaded CPU backend from /opt/llama/libggml-cpu-" in text
        assert "loaded CUDA backend" not in text
    finally:
        docker("rm", "-f", name)
