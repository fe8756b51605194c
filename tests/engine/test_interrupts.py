"""Interrupted is not broken: `up` and `build` stopped by a real signal at a real moment exit 130 (or
143) with one line, leave nothing half-written that the next run would trust, and the next run carries
on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration import BuiltImage, cli_env, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("delay", "signum", "code"), [(0.8, signal.SIGINT, 130), (2.0, signal.SIGTERM, 143)])
def test_up_stopped_by_a_signal(
    cpu_image: BuiltImage, tmp_path: Path, delay: float, signum: int, code: int
) -> None:
    project = f"sfo-test-interrupt-{code}"
    env = cli_env(
        ORCHESTRATOR_PROJECT=project,
        ORCHESTRATOR_MODELS_DIR=str(tmp_path / "models"),
        ORCHESTRATOR_WAIT_TIMEOUT="180",
    )
    args = [*cpu_image.args, "--port", str(free_port())]
    try:
        upping = _start("up", *args, env=env)
        time.sleep(delay)
        if upping.poll() is not None:
            pytest.skip(f"up finished in under {delay} s here; nothing left to interrupt")
        upping.send_signal(signum)
        _out, err = upping.communicate(timeout=120)
        assert upping.returncode == code, err
        assert err.strip().splitlines()[-1].startswith(("interrupted", "terminated"))
        assert "Traceback" not in err
        compose = Path(env["ORCHESTRATOR_DATA_DIR"]) / "compose" / f"{project}.yaml"
        if compose.exists():  # the old file or the new one, whole: never half of one
            assert yaml.safe_load(compose.read_text())["services"]["llama-server"]["image"] == cpu_image.tag
        assert not list(compose.parent.glob("*.partial"))
        again = run_cli("up", *args, env=env, timeout=600)
        assert again.returncode == 0, again.stderr + again.stdout
        status = json.loads(run_cli("status", *args, "--json", env=env).stdout)
        assert status["state"] == "running"
    finally:
        run_cli("down", *args, env=env)


def test_build_stopped_by_a_signal_keeps_the_image_and_the_next_build_carries_on(
    cpu_image: BuiltImage,
) -> None:
    before = docker("image", "inspect", cpu_image.tag, "--format", "{{.Id}}").stdout.strip()
    contexts = Path(cpu_image.env["ORCHESTRATOR_DATA_DIR"]) / "contexts"
    earlier = set(contexts.glob("*"))  # left by runs killed before this test (not ours to judge)
    building = _start("build", "--rebuild", *cpu_image.args, env=cpu_image.env)
    time.sleep(3)
    if building.poll() is not None:
        pytest.skip("the cached rebuild finished in under 3 s here; nothing left to interrupt")
    building.send_signal(signal.SIGINT)
    _out, err = building.communicate(timeout=120)
    assert building.returncode == 130, err
    assert "Traceback" not in err
    # The image the last finished build made is still there under its tag, and still current.
    assert docker("image", "inspect", cpu_image.tag, "--format", "{{.Id}}").stdout.strip() == before
    assert set(contexts.glob("*")) <= earlier, "the interrupted build's context was removed"
    again = run_cli("build", *cpu_image.args, env=cpu_image.env)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("debootstrap") is None, reason="needs root and debootstrap"
)
def test_a_base_bootstrap_stopped_by_a_signal_keeps_the_base_and_leaves_nothing(
    cpu_image: BuiltImage,
) -> None:
    """bases bootstrap --rebuild, stopped while debootstrap runs: the base image the suite built on is
    still there under its tag, unchanged, and the scratch root is gone (nothing left mounted in it)."""
    tag = "step-flash-base:vulkan-build"
    before = docker("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip()
    assert before
    scratch = Path(cpu_image.env["ORCHESTRATOR_DATA_DIR"]) / "bases"
    making = _start("bases", "bootstrap", "--family", "vulkan", "--rebuild", env=cpu_image.env)
    deadline = time.monotonic() + 120
    while not list(scratch.glob("*/rootfs/*")):
        assert making.poll() is None, making.communicate()
        assert time.monotonic() < deadline, "debootstrap never started writing"
        time.sleep(0.5)
    time.sleep(3)
    making.send_signal(signal.SIGINT)
    _out, err = making.communicate(timeout=120)
    assert making.returncode == 130, err
    assert docker("image", "inspect", tag, "--format", "{{.Id}}").stdout.strip() == before
    assert not list(scratch.glob("*")), "the scratch root was removed"
    assert str(scratch) not in Path("/proc/self/mounts").read_text()
