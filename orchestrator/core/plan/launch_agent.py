"""How the Mac's native server is supervised: a per-user launchd agent (a LaunchAgent plist's keys)
that runs llama-server from the native install with the plan's environment, writes its log, starts it
at login (RunAtLoad) and starts it again whenever it exits (KeepAlive), as a Mac runs its services. The
container runtime's supervisor is Docker (restart: unless-stopped); a Linux --native server has none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LABEL_PREFIX = "io.step-flash."


def agent_label(project: str) -> str:
    """The agent's launchd label: one per server name (the compose project's, for the native server)."""
    return f"{LABEL_PREFIX}{project}"


def proxy_agent_label(project: str) -> str:
    """The label of the agent that runs the native server's proxy (Caddy) in front of it."""
    return f"{agent_label(project)}.proxy"


def library_env(prefix: str) -> dict[str, str]:
    """Where the native install's libraries and GPU backends are found: beside its executables (what
    scripts/macos-native/env.sh sets for the scripts)."""
    lib = str(Path(prefix) / "bin")
    return {"DYLD_LIBRARY_PATH": lib, "LD_LIBRARY_PATH": lib}


def launch_agent(
    label: str, argv: Sequence[str], env: Mapping[str, str], working_dir: Path, log: Path
) -> dict[str, Any]:
    """The agent's plist keys (see launchd.plist(5))."""
    return {
        "Label": label,
        "ProgramArguments": list(argv),
        "EnvironmentVariables": dict(env),
        "WorkingDirectory": str(working_dir),
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
        "RunAtLoad": True,
        "KeepAlive": True,
        # A server, not a background job: launchd does not throttle its CPU or I/O.
        "ProcessType": "Interactive",
    }
