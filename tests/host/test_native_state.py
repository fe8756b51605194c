"""A native server's pid is signalled only once it is shown to be that server: its command line and a
start before its pid file. A process that reused the pid is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.executors import native
from tests.fakes import cpu_plan

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(SLEEPER)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_is_server_wants_the_recorded_command_and_a_start_before_the_pid_file(
    sleeper: subprocess.Popen[bytes],
) -> None:
    time.sleep(0.2)  # the child has exec'd
    now = time.time()
    assert native.is_server(sleeper.pid, SLEEPER, started_by=now)
    # Another command line under that pid: not ours.
    assert not native.is_server(sleeper.pid, ("/opt/llama/bin/llama-server", "-m", "x.gguf"), started_by=now)
    # The pid file is older than the process by far: the pid was reused after our server ended.
    assert not native.is_server(sleeper.pid, SLEEPER, started_by=now - 3600)
    # No recorded command: only a llama-server counts.
    assert not native.is_server(sleeper.pid, (), started_by=now)


def test_a_dead_pid_is_no_server() -> None:
    done = subprocess.Popen((sys.executable, "-c", "pass"))
    done.wait()
    assert not native.is_server(done.pid, (sys.executable, "-c", "pass"), started_by=time.time())


def test_down_never_signals_a_process_that_reused_the_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    plan = cpu_plan(tmp_path)
    folder = native.state_dir(plan)
    folder.mkdir(parents=True)
    pid_file = folder / "llama-server.pid"
    pid_file.write_text(f"{sleeper.pid}\n")
    (folder / "llama-server.argv").write_text("/opt/llama/bin/llama-server\n--port\n8080\n")
    # The pid file was written an hour before this process began (a reboot in between).
    old = time.time() - 3600
    os.utime(pid_file, (old, old))
    assert not native.state(plan).running
    assert native.stop(plan) is False
    assert sleeper.poll() is None  # alive, never signalled
    assert not pid_file.exists()


def test_the_sockets_folder_in_tmp_must_be_the_owners_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tmp is shared: a folder someone else made first, a link, a file, or one others may open is
    refused, and nothing in it is touched (a running server's socket stays until it is stopped)."""
    from dataclasses import replace

    from orchestrator.errors import UsageError

    plan = cpu_plan(tmp_path)
    mine = replace(plan, socket=tmp_path / "step-flash-0" / "step-flash-1.sock")
    native.socket_folder(mine)
    assert (tmp_path / "step-flash-0").stat().st_mode & 0o777 == 0o700
    (tmp_path / "step-flash-0" / "step-flash-1.sock").write_text("the running server's")
    native.socket_folder(mine)
    assert (tmp_path / "step-flash-0" / "step-flash-1.sock").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "linked").symlink_to(elsewhere)
    opened = tmp_path / "opened"
    opened.mkdir()
    opened.chmod(0o755)
    (tmp_path / "a-file").write_text("")
    for folder in ("linked", "opened", "a-file"):
        with pytest.raises(UsageError, match="not a folder of yours that only you open"):
            native.socket_folder(replace(plan, socket=tmp_path / folder / "x.sock"))
    # Made by someone else (another uid than ours), though closed: refused.
    monkeypatch.setattr("os.getuid", lambda: os.stat(tmp_path).st_uid + 4242)
    with pytest.raises(UsageError, match="not a folder of yours"):
        native.socket_folder(mine)


def test_launchds_guard_makes_the_folder_clears_a_stale_socket_and_refuses_a_link(tmp_path: Path) -> None:
    """What launchd runs before llama-server (after a crash, or at login once /tmp was emptied)."""
    from orchestrator.core.plan.native import socket_guarded

    socket = tmp_path / "step-flash-501" / "step-flash-1.sock"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(socket_guarded(argv, socket), capture_output=True, text=True, check=False)

    assert run("echo", "served").stdout == "served\n"
    assert (socket.parent.stat().st_mode & 0o777) == 0o700
    socket.write_text("left by a crashed server")
    assert run("ls", str(socket.parent)).stdout == "" and not socket.exists()
    socket.parent.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    socket.parent.symlink_to(elsewhere)
    refused = run("echo", "served")
    assert refused.returncode == 1 and "not a folder of yours alone" in refused.stderr and not refused.stdout
    if os.geteuid() == 0:
        # Another user's folder, closed like ours: refused too ([ -O ] is the owner check).
        socket.parent.unlink()
        socket.parent.mkdir(mode=0o700)
        os.chown(socket.parent, 4242, 4242)
        theirs = run("echo", "served")
        assert theirs.returncode == 1 and not theirs.stdout


def test_an_empty_proxy_pid_file_is_no_proxy(tmp_path: Path) -> None:
    """A crash can leave the pid file empty: no traceback, no proxy, and nothing signalled."""
    from orchestrator.executors import native_proxy

    plan = cpu_plan(tmp_path, native=True)
    folder = native.state_dir(plan)
    folder.mkdir(parents=True)
    (folder / f"proxy-{plan.project}.pid").write_text("")
    state = native_proxy.state(plan)
    assert state.pid is None and not state.running


def test_a_socket_path_too_long_for_sun_path_is_one_line(tmp_path: Path) -> None:
    from orchestrator.errors import UsageError
    from tests.planning import fixed_plan

    with pytest.raises(UsageError, match="longer than a Unix socket's path may be"):
        fixed_plan("cpu", "default", {"data_dir": tmp_path, "native": True, "project": "p" * 90})


def test_the_native_port_is_held_by_its_own_proxy_only_on_that_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Mac's proxy agent (the recording launchctl) holds 8080: up again on 8080 is free for it, on
    another port that is taken it is refused before anything is replaced."""
    from orchestrator.errors import UsageError
    from orchestrator.executors import native_proxy
    from orchestrator.executors.native_runtime import NativeRuntime
    from tests.fakes import FakeHost
    from tests.planning import fixed_plan

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(native_proxy, "caddy", lambda: "/opt/homebrew/bin/caddy")
    monkeypatch.setattr(native, "socket_folder", lambda plan: None)
    host = FakeHost(ports_in_use={8080, 9000})
    runtime = NativeRuntime(host, launchd=True)
    plan = fixed_plan("mac-studio", "default", {"data_dir": tmp_path / "data"})
    runtime.start(plan)
    runtime.check_port(plan)
    moved = fixed_plan("mac-studio", "default", {"data_dir": tmp_path / "data", "port": 9000})
    with pytest.raises(UsageError, match="port 9000"):
        runtime.check_port(moved)
