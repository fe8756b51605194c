"""One writer at a time: a command that changes the data directory waits for (or, with --no-wait,
refuses) another that holds it, says who that is, and is never stopped by a lock its holder left behind
when it was killed. Read-only commands never wait. Real processes, a real OS lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import run_cli

HOLD = """
import sys, time
from pathlib import Path
from orchestrator.executors.lock import exclusive
with exclusive(Path(sys.argv[1]), wait=True, on_wait=print):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def env(isolated_env: Path) -> dict[str, str]:
    data = isolated_env / "data-dir"
    return {**os.environ, "ORCHESTRATOR_DATA_DIR": str(data), "COLUMNS": "200"}


def hold(folder: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_no_wait_refuses_in_one_line_naming_the_holder(env: dict[str, str]) -> None:
    holder = hold(Path(env["ORCHESTRATOR_DATA_DIR"]), 30)
    try:
        out = run_cli("bench", "report", "--no-wait", env=env, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"in use by pid {holder.pid}" in out.stderr and "--no-wait" in out.stderr


def test_a_second_writer_waits_and_says_for_whom(env: dict[str, str]) -> None:
    holder = hold(Path(env["ORCHESTRATOR_DATA_DIR"]), 3)
    started = time.monotonic()
    out = run_cli("bench", "report", env=env, timeout=60)
    waited = time.monotonic() - started
    holder.wait()
    assert f"waiting for pid {holder.pid}" in out.stdout
    # It ran once the holder let go: bench report then finds no results (exit 2, one line).
    assert out.returncode == 2 and "no benchmark results" in out.stderr
    assert waited >= 1.0


def test_a_killed_holder_leaves_no_obstacle(env: dict[str, str]) -> None:
    holder = hold(Path(env["ORCHESTRATOR_DATA_DIR"]), 300)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    out = run_cli("bench", "report", "--no-wait", env=env, timeout=60)
    assert out.returncode == 2 and "no benchmark results" in out.stderr


def test_read_only_commands_never_wait(env: dict[str, str]) -> None:
    holder = hold(Path(env["ORCHESTRATOR_DATA_DIR"]), 60)
    try:
        plan = run_cli("plan", "--target", "cpu", "--json", env=env, timeout=30)
        listed = run_cli("model", "list", env=env, timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert plan.returncode == 0, plan.stderr
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["bench", "--results", "/proc/forbidden"], "cannot make the results folder /proc/forbidden"),
        (["bench", "report", "--results", "FILE"], "the results folder FILE is a file, not a folder"),
        (["model", "list", "--models-dir", "FILE"], "the models directory FILE is a file, not a folder"),
        (["bench", "report", "--results", "/proc/1"], "cannot write in the results folder /proc/1"),
    ],
)
def test_path_errors_are_one_line(args: list[str], says: str, env: dict[str, str], tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    args = [str(a_file) if a == "FILE" else a for a in args]
    out = run_cli(*args, env=env, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert says.replace("FILE", str(a_file)) in out.stderr


def test_an_unwritable_data_dir_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = run_cli("bench", "report", env={**env, "ORCHESTRATOR_DATA_DIR": str(a_file / "data")}, timeout=60)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "choose a writable folder" in out.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["up", "--target", "cpu", "--host", "0.0.0.0"], "refusing to publish on 0.0.0.0 without an API key"),
        (["up", "--target", "cpu", "--api-key-file", "MISSING"], "is missing or empty"),
        (["up", "--target", "cpu", "--port", "http"], "port"),
        (["bench", "--target", "cpu", "--npp", "x"], "--npp takes comma-separated whole numbers"),
        (["bench", "serve", "--target", "cpu", "--clients", "0"], "each count must be 1 to 64"),
        (["build", "--target", "cpu", "--push", "--registry", "none"], "--push needs a registry, not none"),
        (["up", "--target", "cpu", "--registry", "ghcr.io/Bad Name"], "expected none or a registry"),
        (["up", "--target", "cpu", "--no-build", "--registry", "none"], "--no-build needs a registry"),
        (["up", "--target", "cpu", "--build", "--no-build"], "not allowed with argument --build"),
        (["worker", "up", "--target", "cpu", "--listen", "0.0.0.0"], "0.0.0.0"),
        (["bases", "bootstrap", "--family", "rocm"], "unknown image family 'rocm'"),
    ],
)
def test_bad_input_answers_while_another_command_holds_the_lock(
    args: list[str], says: str, env: dict[str, str], tmp_path: Path
) -> None:
    """No waiting first: the holder keeps the lock far longer than the answer is given time to come."""
    args = [str(tmp_path / "missing-key") if a == "MISSING" else a for a in args]
    holder = hold(Path(env["ORCHESTRATOR_DATA_DIR"]), 300)
    try:
        out = run_cli(*args, env=env, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2, out.stderr
    assert "waiting for" not in out.stdout + out.stderr
    assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1
