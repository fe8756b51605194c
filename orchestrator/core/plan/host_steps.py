"""The profile's host steps (page-cache drop, the Mac's wired limit) as commands, with sudo where this
user is not root and what to read first for a step that sets a value."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.catalogue import HookSpec
from orchestrator.core.facts import HostFacts


@dataclass(frozen=True)
class HostStep:
    name: str
    summary: str
    argv: tuple[str, ...]
    needs_root: bool
    # A step that sets a value: how to read it, and the value wanted (run only while it reads lower).
    read: tuple[str, ...] = ()
    wanted: int | None = None
    # Asked even as root (a setting the user should decide), and what to do instead when not run.
    ask_always: bool = False
    alternative: str | None = None

    def shell(self) -> str:
        cmd = shlex.join(self.argv)
        return f"sudo {cmd}" if self.needs_root else cmd


def host_steps(hooks: Sequence[HookSpec], facts: HostFacts) -> tuple[HostStep, ...]:
    steps = []
    for hook in hooks:
        if hook.kind == "drop-page-cache":
            steps.append(
                HostStep(
                    "drop-page-cache",
                    "write dirty pages and drop the page cache so the model's memory is free before it loads",
                    ("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"),
                    needs_root=not facts.is_root,
                )
            )
        elif hook.kind == "wired-limit":
            steps.append(
                HostStep(
                    "wired-limit",
                    f"let Metal wire up to {hook.value} MB (resets at reboot)",
                    ("sysctl", f"iogpu.wired_limit_mb={hook.value}"),
                    needs_root=not facts.is_root,
                    read=("sysctl", "-n", "iogpu.wired_limit_mb"),
                    wanted=hook.value,
                    ask_always=True,
                    alternative=hook.alternative,
                )
            )
    return tuple(steps)
