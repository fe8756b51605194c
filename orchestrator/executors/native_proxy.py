"""The proxy in front of a native server: the same Caddy configuration as a container's (core.plan.proxy),
run on the host from the owner's caddy (Homebrew's on the Mac, Debian's on Linux), under launchd on the
Mac (an agent of its own beside the server's) or as a background process on Linux. llama-server listens
on a Unix socket only this proxy dials, so the Host, Origin, key and TLS rules hold for a native server
as they do for a container's."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.core.plan import Plan
from orchestrator.core.plan.launch_agent import launch_agent, proxy_agent_label
from orchestrator.core.plan.native import native_state_dir, proxy_log
from orchestrator.core.plan.proxy import all_secrets_dir, tls_files
from orchestrator.errors import UsageError
from orchestrator.executors import launchd
from orchestrator.executors.launchd import Launchctl
from orchestrator.executors.native import is_server, read_pid
from orchestrator.files import content_digest, digest_key

STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class ProxyState:
    pid: int | None
    running: bool
    argv: tuple[str, ...]
    # The digest of what it read at start (its configuration, the certificate and key).
    inputs: str | None


def caddy() -> str:
    """The owner's caddy, or one line saying how to install it."""
    found = shutil.which("caddy")
    if found is None:
        how = "brew install caddy" if platform.system() == "Darwin" else "apt-get install caddy"
        raise UsageError(
            f"caddy is not installed: a native server is reached through it, as a container's is ({how})"
        )
    return found


def argv(plan: Plan) -> tuple[str, ...]:
    return (caddy(), "run", "--config", str(plan.proxy_file))


def inputs_digest(plan: Plan) -> str:
    """What Caddy reads once, at start: its configuration, and the certificate and key it serves."""
    files = tls_files(plan.data_dir, plan.project)
    read = [p for p in (plan.proxy_file, files.proxy_cert, files.proxy_key) if p.is_file()]
    return content_digest(
        b"".join(path.read_bytes() for path in read), digest_key(all_secrets_dir(plan.data_dir))
    )


def environment(plan: Plan) -> dict[str, str]:
    """Caddy looks for a home for its state: the native state folder (its storage is set there too)."""
    home = str(native_state_dir(plan.data_dir))
    return {"XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home, "HOME": os.environ.get("HOME", home)}


# --- on Linux: a background process with a pid file ------------------------------------------------------


def _files(plan: Plan) -> tuple[Path, Path, Path]:
    folder, name = native_state_dir(plan.data_dir), f"proxy-{plan.project}"
    return folder / f"{name}.pid", folder / f"{name}.argv", folder / f"{name}.inputs"


def state(plan: Plan) -> ProxyState:
    pid_file, argv_file, inputs_file = _files(plan)
    pid = read_pid(pid_file)
    # Without its command line recorded, the command this plan runs it with is what it must be running.
    recorded = (
        tuple(argv_file.read_text().splitlines())
        if argv_file.is_file()
        else (shutil.which("caddy") or "caddy", "run", "--config", str(plan.proxy_file))
    )
    running = pid is not None and is_server(pid, recorded, started_by=pid_file.stat().st_mtime)
    inputs = inputs_file.read_text().strip() if inputs_file.is_file() else None
    return ProxyState(pid, running, recorded, inputs)


def start(plan: Plan, command: tuple[str, ...], inputs: str) -> None:
    """Start Caddy in place of the proxy this plan's name runs (stopped first)."""
    stop(plan)
    pid_file, argv_file, inputs_file = _files(plan)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with proxy_log(plan.data_dir, plan.project).open("a") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **environment(plan)},
            start_new_session=True,
        )
    # The pid first: whatever happens next, a later command finds the process to stop.
    pid_file.write_text(f"{process.pid}\n")
    argv_file.write_text("\n".join(command) + "\n")
    inputs_file.write_text(inputs + "\n")


def stop(plan: Plan) -> bool:
    """Stop the proxy, when its pid is shown to be it; whether one ran."""
    current = state(plan)
    pid_file = _files(plan)[0]
    if current.pid is not None and current.running:
        process = psutil.Process(current.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            process.kill()
    pid_file.unlink(missing_ok=True)
    return current.running


# --- on the Mac: a launchd agent of its own ---------------------------------------------------------------


def agent_state(host: Launchctl, plan: Plan) -> ProxyState:
    label = proxy_agent_label(plan.project)
    agent = launchd.loaded_agent(label) or {}
    job, pid = launchd.job_state(host, label)
    env = agent.get("EnvironmentVariables", {})
    return ProxyState(
        pid, job == "running", tuple(agent.get("ProgramArguments", ())), env.get(INPUTS_VARIABLE)
    )


def start_agent(host: Launchctl, plan: Plan, command: tuple[str, ...], inputs: str) -> None:
    folder = native_state_dir(plan.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**environment(plan), INPUTS_VARIABLE: inputs}
    launchd.load(
        host,
        launch_agent(
            proxy_agent_label(plan.project), command, env, folder, proxy_log(plan.data_dir, plan.project)
        ),
    )


def stop_agent(host: Launchctl, plan: Plan) -> bool:
    return launchd.unload(host, proxy_agent_label(plan.project))


# In a native process's environment: the digest of the files it read at start (its key, or the proxy's
# configuration and certificate), so that `up` can tell whether the running one read what the plan gives.
INPUTS_VARIABLE = "STEP_FLASH_INPUTS"
