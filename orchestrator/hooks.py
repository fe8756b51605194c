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
        if step.name == "wired-limit":
            results.append(_wired_limit(step, decision, ask))
            continue
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


WIRED_ALTERNATIVE = "at <= 76K context a q8_0 KV cache (-ctk q8_0 -ctv q8_0) fits without it"


def read_wired_limit() -> int | None:
    """iogpu.wired_limit_mb as sysctl reports it (0: the macOS default), or None where there is none."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", "iogpu.wired_limit_mb"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return int(value) if done.returncode == 0 and value.isdigit() else None


def _wired_limit(step: HostStep, decision: bool | None, ask: Callable[[str], bool] | None) -> HookResult:
    """Raising Metal's wired limit is never done silently: it is read first, and only raised when it is
    lower than the profile needs and the user agreed (a flag or a yes on the terminal)."""
    wanted = int(step.argv[-1].split("=", 1)[1])
    current = read_wired_limit()
    if current is None:
        return HookResult(
            step.name, False, "this host has no iogpu.wired_limit_mb (not a Mac); nothing to raise"
        )
    if current >= wanted:
        return HookResult(
            step.name, False, f"iogpu.wired_limit_mb is {current} MB already (>= {wanted}); kept"
        )
    now = f"{current} MB" if current else "the macOS default (about 107.5 GiB on 128 GiB)"
    if decision is False:
        return HookResult(step.name, False, f"kept the wired limit at {now}; {WIRED_ALTERNATIVE}")
    if decision is None:
        if ask is None:
            return HookResult(
                step.name,
                False,
                f"the wired limit is {now} and the profile needs {wanted} MB; not raised (no terminal to ask): "
                f"run {step.shell()} (it resets at reboot), or {WIRED_ALTERNATIVE}",
            )
        question = (
            f"Metal may wire {now}; this profile needs {wanted} MB. Run `{step.shell()}` now? "
            "(it resets at reboot)"
        )
        if not ask(question):
            return HookResult(
                step.name, False, f"kept the wired limit at {now} as you said; {WIRED_ALTERNATIVE}"
            )
    argv = ["sudo", *step.argv] if step.needs_root else list(step.argv)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or (read_wired_limit() or 0) < wanted:
        why = (done.stderr or done.stdout).strip().splitlines()
        return HookResult(
            step.name,
            False,
            f"could not raise the wired limit ({why[-1] if why else 'unchanged'}); {WIRED_ALTERNATIVE}",
        )
    return HookResult(step.name, True, f"raised iogpu.wired_limit_mb to {wanted} MB (until the next reboot)")
