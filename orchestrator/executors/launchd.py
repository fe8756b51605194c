"""The Mac's native server under launchd: a per-user agent (the plan's LaunchAgent, written with
plistlib to ~/Library/LaunchAgents) loaded with `launchctl bootstrap gui/UID`, so launchd starts it at
login and again after a crash; `down` boots it out and removes the file; its state is launchd's own
(`launchctl print gui/UID/LABEL`). launchctl is reached through the Host, so tests record the calls.

Not run on a Mac here (none in this project's machines): the `print` fields read below ("state = ..."
and "pid = ...") follow public examples of launchctl 2's output, and an answer without them is reported
as such, never guessed at."""

from __future__ import annotations

import os
import plistlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import OrchestratorError
from orchestrator.files import write_atomic


class Launchctl(Protocol):
    def launchctl(self, *args: str) -> tuple[int, str]:
        """Run launchctl with args: its exit code and what it printed."""


class LaunchdFailed(OrchestratorError):
    """launchctl refused to load the agent; the message says what it printed."""


def agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


def plist_path(label: str) -> Path:
    return agents_dir() / f"{label}.plist"


def _domain() -> str:
    return f"gui/{os.getuid()}"


def load(host: Launchctl, agent: Mapping[str, Any]) -> Path:
    """Write the agent and (re)load it: launchd starts it now (RunAtLoad) and keeps it alive."""
    label = str(agent["Label"])
    path = plist_path(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, plistlib.dumps(dict(agent)).decode())
    # A loaded agent of the same label is replaced (bootstrap refuses to load one twice).
    host.launchctl("bootout", f"{_domain()}/{label}")
    code, said = host.launchctl("bootstrap", _domain(), str(path))
    if code != 0:
        raise LaunchdFailed(f"launchctl bootstrap {_domain()} {path} failed (exit {code}): {said.strip()}")
    return path


def unload(host: Launchctl, label: str) -> bool:
    """Boot the agent out (launchd stops the server) and remove its file; whether there was one."""
    path = plist_path(label)
    code, _said = host.launchctl("bootout", f"{_domain()}/{label}")
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed or code == 0


def loaded_agent(label: str) -> dict[str, Any] | None:
    """The agent file as it is on disk (None: none written)."""
    path = plist_path(label)
    if not path.is_file():
        return None
    with path.open("rb") as file:
        agent: dict[str, Any] = plistlib.load(file)
    return agent


def job_state(host: Launchctl, label: str) -> tuple[str, int | None]:
    """launchd's state of the job ("running", "not running", ..., or "not loaded") and its pid."""
    code, said = host.launchctl("print", f"{_domain()}/{label}")
    if code != 0:
        return "not loaded", None
    state = re.search(r"^\s*state = (.+)$", said, re.M)
    pid = re.search(r"^\s*pid = (\d+)$", said, re.M)
    return (state.group(1).strip() if state else "loaded (no state in launchctl print)"), (
        int(pid.group(1)) if pid else None
    )
