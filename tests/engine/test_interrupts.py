"""Interrupted is not broken: `up` and `build` stopped by a real signal at a real moment exit 130 (or
143) with one line, leave nothing half-written that the next run would trust, and the next run carries
on.

The moment is made, not waited for: a stand-in `docker` ahead of the real one on the command's PATH lets
every call through but the one a test names, which it holds (before or after running it for real) and
says so in a file; the signal goes once that file is there, so it always lands while the command waits on
that call, however fast this machine is."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml

from tests.integration import BuiltImage, cli_env, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

# Every call but the one whose arguments hold all of $WORDS goes to the real docker; that one is run first
# when $THEN is "run", then held (its pid in $MARK) until a signal ends it, or ten minutes.
HOLDING_DOCKER = """#!/bin/sh
for word in $WORDS; do
    case " $* " in *" $word "*) ;; *) exec "$REAL" "$@" ;; esac
done
if [ "$THEN" = run ]; then "$REAL" "$@"; fi
echo $$ > "$MARK.tmp" && mv "$MARK.tmp" "$MARK"
exec sleep 600
"""


@contextmanager
def held(
    folder: Path, env: dict[str, str], words: str, then: str = "hold"
) -> Iterator[tuple[dict[str, str], Path]]:
    """The command's environment with the holding docker first on its PATH, and the file that appears
    once the named call is held; the held call is ended afterwards if the command left it."""
    real = shutil.which("docker")
    assert real is not None
    bin_dir, mark = folder / "holding-bin", folder / "held"
    bin_dir.mkdir()
    shim = bin_dir / "docker"
    shim.write_text(HOLDING_DOCKER)
    shim.chmod(0o755)
    extra = {
        "PATH": f"{bin_dir}:{env['PATH']}",
        "REAL": real,
        "WORDS": words,
        "THEN": then,
        "MARK": str(mark),
    }
    try:
        yield {**env, **extra}, mark
    finally:
        if mark.exists():
            # Still our held call (not a process that took its pid after the command ended it)?
            pid = int(mark.read_text())
            with suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"600"]:
                    os.kill(pid, signal.SIGKILL)


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(mark: Path, process: subprocess.Popen[str]) -> None:
    """Until the held call says so (the command must not end first)."""
    deadline = time.monotonic() + 600
    while not mark.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the call to hold never came"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("then", "signum", "code"),
    [("hold", signal.SIGINT, 130), ("run", signal.SIGTERM, 143)],
    ids=["before-the-container-starts", "after-it-started"],
)
def test_up_stopped_by_a_signal(
    cpu_image: BuiltImage, tmp_path: Path, then: str, signum: int, code: int
) -> None:
    """Stopped while `docker compose up` runs: before it starts the container (its compose file just
    written), or once it has (the server loading)."""
    project = f"sfo-test-interrupt-{code}"
    env = cli_env(
        ORCHESTRATOR_PROJECT=project,
        ORCHESTRATOR_MODELS_DIR=str(tmp_path / "models"),
        ORCHESTRATOR_WAIT_TIMEOUT="180",
    )
    args = [*cpu_image.args, "--port", str(free_port())]
    try:
        with held(tmp_path, env, "compose up", then) as (held_env, mark):
            upping = _start("up", *args, env=held_env)
            _wait_for(mark, upping)
            upping.send_signal(signum)
            _out, err = upping.communicate(timeout=120)
        assert upping.returncode == code, err
        assert err.strip().splitlines()[-1].startswith(("interrupted", "terminated"))
        assert "Traceback" not in err
        compose = Path(env["ORCHESTRATOR_DATA_DIR"]) / "compose" / f"{project}.yaml"
        # The file up was about to start from, whole: never half of one.
        assert yaml.safe_load(compose.read_text())["services"]["llama-server"]["image"] == cpu_image.tag
        assert not list(compose.parent.glob("*.partial"))
        again = run_cli("up", *args, env=env, timeout=600)
        assert again.returncode == 0, again.stderr + again.stdout
        status = json.loads(run_cli("status", *args, "--json", env=env).stdout)
        assert status["state"] == "running"
    finally:
        run_cli("down", *args, env=env)


def test_build_stopped_by_a_signal_keeps_the_image_and_the_next_build_carries_on(
    cpu_image: BuiltImage, tmp_path: Path
) -> None:
    """Stopped while `docker buildx build` runs, its context made."""
    before = docker("image", "inspect", cpu_image.tag, "--format", "{{.Id}}").stdout.strip()
    contexts = Path(cpu_image.env["ORCHESTRATOR_DATA_DIR"]) / "contexts"
    earlier = set(contexts.glob("*"))  # left by runs killed before this test (not ours to judge)
    with held(tmp_path, cpu_image.env, "buildx build") as (held_env, mark):
        building = _start("build", "--rebuild", *cpu_image.args, env=held_env)
        _wait_for(mark, building)
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
