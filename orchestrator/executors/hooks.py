"""Host steps a profile needs before the model loads (page-cache drop, Metal wired limit).

They run on the host, never through a privileged container: directly when we are root, otherwise
with sudo once the user agrees (asked on a terminal, or given as a flag).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.plan.host_steps import HostStep


@dataclass(frozen=True)
class HookResult:
    name: str
    ran: bool
    message: str


def read_value(argv: Sequence[str]) -> int | None:
    """The whole number a command prints (sysctl -n ...), or None where it cannot be read."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return int(value) if done.returncode == 0 and value.isdigit() else None


def run_host_steps(
    steps: Sequence[HostStep],
    *,
    decisions: Mapping[str, bool | None],
    ask: Callable[[str], bool] | None,
) -> list[HookResult]:
    """decisions: per step name, True to run, False to skip, None to ask (or skip when no one can be asked).
    A step that sets a value reads it first and is left out while it is already high enough."""
    results = []
    for step in steps:
        decision = decisions.get(step.name)
        instead = f"; {step.alternative}" if step.alternative else ""
        now = ""
        if step.read:
            current = read_value(step.read)
            setting = step.read[-1]
            if current is None:
                results.append(HookResult(step.name, False, f"this host has no {setting}; nothing to change"))
                continue
            if step.wanted is not None and current >= step.wanted:
                results.append(
                    HookResult(step.name, False, f"{setting} is {current} already (>= {step.wanted}); kept")
                )
                continue
            now = f" ({setting} is {current} now)"
        if decision is False:
            results.append(
                HookResult(
                    step.name, False, f"skipped {step.name}; to run it yourself: {step.shell()}{instead}"
                )
            )
            continue
        if (step.needs_root or step.ask_always) and decision is None:
            if ask is None:
                results.append(
                    HookResult(
                        step.name,
                        False,
                        f"{step.summary}: not run (no terminal to ask); run it yourself: {step.shell()}{instead}",
                    )
                )
                continue
            if not ask(f"{step.summary}{now}. Run `{step.shell()}` now?"):
                results.append(HookResult(step.name, False, f"skipped {step.name} as you said{instead}"))
                continue
        argv = ["sudo", *step.argv] if step.needs_root else list(step.argv)
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        took = step.wanted is None or (read_value(step.read) or 0) >= step.wanted
        if done.returncode == 0 and took:
            results.append(HookResult(step.name, True, f"ran {step.name}: {step.shell()}"))
        else:
            why = (done.stderr or done.stdout).strip().splitlines()
            results.append(
                HookResult(
                    step.name,
                    False,
                    f"{step.name} failed ({why[-1] if why else done.returncode}); going on without it{instead}",
                )
            )
    return results
