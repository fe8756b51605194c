"""One writer at a time, across real processes and a real OS lock: a command that changes the data
directory waits for (or, with --no-wait, refuses) another that holds it, says who that is, and is never
stopped by a lock its holder left behind when it was killed; read-only commands and bad input never wait.

Whether a command waited is shown by what happened, never by how long it took: the holder keeps the lock
until the test lets it go, so a command that ends while it holds never waited, and one that waits says so
(and is still running) before the holder lets go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import run_cli

# Holds the lock until a line (or the end) arrives on its stdin. A bound, never reached by a passing test,
# ends a test whose command waits without saying so in a failure rather than a hang.
HOLD = """
import select, sys
from pathlib import Path
from orchestrator.executors.lock import exclusive
with exclusive(Path(sys.argv[1]), wait=True, on_wait=print):
    print("held", flush=True)
    select.select([sys.stdin], [], [], 300)
"""


@pytest.fixture
def env(isolated_env: Path) -> dict[str, str]:
    data = isolated_env / "data-dir"
    # Unbuffered: a line the command prints reaches the test when printed.
    return {**os.environ, "ORCHESTRATOR_DATA_DIR": str(data), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def holder(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the data directory's lock (it has said so) until released."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, env["ORCHESTRATOR_DATA_DIR"]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    try:
        yield process
    finally:
        release(process)


def release(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI in a process of its own, its output (stderr after stdout's lines) as it comes."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


def first_line_with(process: subprocess.Popen[str], words: str) -> tuple[str | None, str]:
    """Read the process's output until a line holds words (that line) or the output ends (None); with
    what was read so far."""
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if words in line:
            return line, seen
    return None, seen


def ended_without_waiting(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run a command while the holder keeps the lock: its exit code and output. It either ends (then it
    never waited: the lock is still held) or says it waits, which fails the test at once."""
    process = start(*args, env=env)
    waiting, seen = first_line_with(process, "waiting for")
    if waiting is not None:
        process.kill()
        process.communicate()
        pytest.fail(f"waited for the lock: {waiting}")
    rest, _ = process.communicate(timeout=600)
    return process.returncode, seen + rest


def test_no_wait_refuses_in_one_line_naming_the_holder(
    env: dict[str, str], holder: subprocess.Popen[str]
) -> None:
    out = run_cli("bench", "report", "--no-wait", env=env, timeout=600)
    assert holder.poll() is None, "the holder still holds the lock"
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert f"in use by pid {holder.pid}" in out.stderr and "--no-wait" in out.stderr


def test_a_second_writer_waits_and_says_for_whom(env: dict[str, str], holder: subprocess.Popen[str]) -> None:
    writer = start("bench", "report", env=env)
    said, seen = first_line_with(writer, "waiting for")
    try:
        assert said is not None and f"waiting for pid {holder.pid}" in said, seen
        # It has said it waits and the lock is still held: it cannot have ended.
        assert writer.poll() is None
    finally:
        release(holder)
    rest, _ = writer.communicate(timeout=600)
    # It ran once the holder let go: bench report then finds no results (exit 2, one line).
    assert writer.returncode == 2 and "no benchmark results" in rest, seen + rest


def test_a_killed_holder_leaves_no_obstacle(env: dict[str, str], holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    out = run_cli("bench", "report", "--no-wait", env=env, timeout=600)
    assert out.returncode == 2 and "no benchmark results" in out.stderr


def test_read_only_commands_never_wait(env: dict[str, str], holder: subprocess.Popen[str]) -> None:
    code, said = ended_without_waiting("plan", "--target", "cpu", "--json", env=env)
    assert code == 0, said
    code, said = ended_without_waiting("model", "list", env=env)
    assert code == 0, said
    assert holder.poll() is None, "the holder held the lock throughout"


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
    args: list[str], says: str, env: dict[str, str], tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    args = [str(tmp_path / "missing-key") if a == "MISSING" else a for a in args]
    code, said = ended_without_waiting(*args, env=env)
    assert code == 2, said
    assert says in said and len(said.strip().splitlines()) == 1, said
