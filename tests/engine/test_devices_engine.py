"""The device check against the engine: the ryzen-ai-max plan served where the only Vulkan device is Mesa's
lavapipe (made visible with --gpu 0, i.e. GGML_VK_VISIBLE_DEVICES=0; this machine has no /dev/dri, so the
test-only gpu_passthrough=false leaves that mapping out) is refused with its fix and stopped (exit 6), and
served with --allow-cpu, where status shows the device llama.cpp names."""

from __future__ import annotations

import json

import pytest

from tests.assets import tiny_moe_model
from tests.integration import BuiltImage, cli_env, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def test_a_ryzen_plan_on_lavapipe_is_refused_then_served_with_allow_cpu(cpu_image: BuiltImage) -> None:
    model = tiny_moe_model()
    env = cli_env(
        ORCHESTRATOR_GPU_PASSTHROUGH="false",
        ORCHESTRATOR_PROJECT="sfo-test-lavapipe",
        ORCHESTRATOR_WAIT_TIMEOUT="300",
    )
    source = ["--source", str(cpu_image.source), "--bases", "local"]
    args = [
        "--target", "ryzen-ai-max", *source, "--model", str(model),
        "--gpu", "0", "--ctx-size", "512", "--port", str(free_port()),
    ]  # fmt: skip
    try:
        refused = run_cli("up", *args, "--no-drop-caches", env=env)
        assert refused.returncode == 6, refused.stderr + refused.stdout
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith(
            "error: the model was loaded on the CPU: the only Vulkan device is Vulkan0 (llvmpipe (LLVM"
        ), line
        assert "a software rasteriser; it needs the Radeon GPU (Vulkan/RADV)" in line
        assert "/dev/dri and the host's render and video group ids" in line
        assert line.endswith("the server is stopped")
        assert "Traceback" not in refused.stderr
        assert run_cli("status", *args, env=env).returncode == 5

        allowed = run_cli("up", *args, "--no-drop-caches", "--allow-cpu", env=env)
        assert allowed.returncode == 0, allowed.stderr + allowed.stdout
        assert "warning: the model was loaded on the CPU" in allowed.stdout + allowed.stderr
        status = run_cli("status", *args, "--json", env=env)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        (vulkan,) = [d for d in data["devices"]["devices"] if d["name"] == "Vulkan0"]
        assert vulkan["description"].startswith("llvmpipe (LLVM")
        assert vulkan["model_mib"] > 0 and vulkan["kv_mib"] > 0
        assert data["device_problem"].startswith("the model was loaded on the CPU")
    finally:
        run_cli("down", *args, env=env)
