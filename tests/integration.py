"""Shared pieces of the tests that use the real Docker engine."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.assets import cache_dir, llama_cpp_source


def benchmark_script(script: str) -> ModuleType:
    """A script of benchmarks/ as a module (they are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"{script}_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0


needs_docker = pytest.mark.skipif(
    not docker_available() and os.environ.get("CI") != "true", reason="no Docker engine on this machine"
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process, its exit code and its output."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, errors="replace", timeout=timeout, check=False
    )


def container_id(project: str, service: str = "llama-server", *, running_only: bool = False) -> str:
    """The container of a compose project's service (llama-server by default; its proxy is "proxy")."""
    out = docker(
        "ps",
        "-q" if running_only else "-aq",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    )
    return out.stdout.strip()


def image_labels(tag: str) -> dict[str, str]:
    out = docker("image", "inspect", tag, "--format", "{{json .Config.Labels}}")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout) or {})


def model_mount(model: Path) -> list[str]:
    return ["-v", f"{model.parent}:/models:ro"]


def cli_env(**extra: str) -> dict[str, str]:
    """The developer's own config and ORCHESTRATOR_* never reach a test; builds share one data dir, and
    the suite's images and servers have names of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_DATA_DIR"] = str(cache_dir() / "data")
    # Never the user's images or server: the suite's own image repository and compose project.
    env["ORCHESTRATOR_IMAGE_REPO"] = "step-flash-test"
    env["ORCHESTRATOR_PROJECT"] = "sfo-test"
    # Never a registry beyond this machine: a test that pulls starts its own on 127.0.0.1.
    env["ORCHESTRATOR_REGISTRY"] = "none"
    env["XDG_CONFIG_HOME"] = str(cache_dir() / "no-config")
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    source: Path
    env: dict[str, str]
    args: tuple[str, ...]


def build_cpu_image() -> BuiltImage:
    """The cpu target's (Vulkan family) image from local bases and the pinned source, built once."""
    env = cli_env()
    source = llama_cpp_source()
    bases = run_cli("bases", "bootstrap", "--family", "vulkan", env=env)
    assert bases.returncode == 0, bases.stderr
    args = ("--target", "cpu", "--source", str(source), "--bases", "local")
    plan = run_cli("plan", *args, "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    tag = json.loads(plan.stdout)["build"]["tag"]
    built = run_cli("build", *args, env=env)
    assert built.returncode == 0, built.stderr + built.stdout
    return BuiltImage(tag, source, env, args)


def plan_on_local_bases(family: str, platform: str, *plan_args: str) -> dict[str, object]:
    """Make (or keep) the family's local bases for the platform, then the plan as `plan --json` prints it."""
    env = cli_env()
    made = run_cli("bases", "bootstrap", "--family", family, "--platform", platform, env=env, timeout=5400)
    assert made.returncode == 0, made.stderr + made.stdout
    plan = run_cli("plan", *plan_args, "--json", env=env)
    assert plan.returncode == 0, plan.stderr
    return dict(json.loads(plan.stdout))


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_registry(folder: Path) -> Iterator[str]:
    """Debian's docker-registry on a free port of 127.0.0.1, storing under folder: its address."""
    import time
    import urllib.request

    exe = shutil.which("docker-registry")
    assert exe, "scripts/test.sh installs Debian's docker-registry (apt-get install docker-registry)"
    port = free_port()
    config = folder / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'store'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
