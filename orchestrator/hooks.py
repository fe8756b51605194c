"""Host steps a profile needs before the model loads (page-cache drop, Metal wired limit).

They run on the host, never through a privileged container: directly when we are root, otherwise
with sudo once the user agrees (asked on a terminal, or given as a flag).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.plan import HostStep


@dataclass(frozen=True)
class HookResult:
    name: str
    ran: bool
    message: str


def run_host_steps(
    steps: Sequence[HostStep],
    *,
    decisions: Mapping[str, bool | None],
    ask: Callable[[str], bool] | None,
) -> list[HookResult]:
    """decisions: per step name, True to run, False to skip, None to ask (or skip when no one can be asked)."""
    results = []
    for step in steps:
        decision = decisions.get(step.name)
        if decision is False:
            results.append(
                HookResult(step.name, False, f"skipped {step.name}; to run it yourself: {step.shell()}")
            )
            continue
        if step.needs_root and decision is None:
            if ask is None:
                results.append(
                    HookResult(
                        step.name,
                        False,
                        f"{step.summary}: not run (no terminal to ask); run it yourself: {step.shell()}",
                    )
                )
                continue
            if not ask(f"{step.summary}. Run `{step.shell()}` now?"):
                results.append(HookResult(step.name, False, f"skipped {step.name} as you said"))
                continue
        argv = ["sudo", *step.argv] if step.needs_root else list(step.argv)
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            results.append(HookResult(step.name, True, f"ran {step.name}: {step.shell()}"))
        else:
            why = (done.stderr or done.stdout).strip().splitlines()
            results.append(
                HookResult(
                    step.name,
                    False,
                    f"{step.name} failed ({why[-1] if why else done.returncode}); going on without it",
                )
            )
    return results
