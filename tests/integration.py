"""Shared pieces of the tests that use the real Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0


needs_docker = pytest.mark.skipif(
    not docker_available() and os.environ.get("CI") != "true", reason="no Docker engine on this machine"
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def image_labels(tag: str) -> dict[str, str]:
    out = docker("image", "inspect", tag, "--format", "{{json .Config.Labels}}")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout) or {})


def model_mount(model: Path) -> list[str]:
    return ["-v", f"{model.parent}:/models:ro"]
