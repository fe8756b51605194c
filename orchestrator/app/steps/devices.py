"""The device check every command that loads the model runs: where llama.cpp says it put the weights and
the KV cache, against where the target needs them; refused (exit 6) or, with --allow-cpu, warned."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.app.steps.context import Reporter
from orchestrator.core.devices import Verdict, judge, read_placement
from orchestrator.core.plan import Plan
from orchestrator.errors import WrongDevice


def placement_verdict(plan: Plan, lines: Iterable[str]) -> Verdict:
    return judge(
        read_placement(lines),
        plan.inputs.target.devices,
        plan.model.input_bytes,
        [str(worker) for worker in plan.rpc],
    )


def check_devices(plan: Plan, lines: Iterable[str], report: Reporter, *, allow_cpu: bool) -> Verdict:
    return enforce(placement_verdict(plan, lines), report, allow_cpu=allow_cpu)


def enforce(verdict: Verdict, report: Reporter, *, allow_cpu: bool) -> Verdict:
    """The verdict said: where the model is, a warning (--allow-cpu), or the refusal (WrongDevice)."""
    if verdict.ok:
        if verdict.placement.found:
            report.note(f"devices: {verdict.placement.describe()}")
        else:
            report.note("devices: llama.cpp's log named none; the placement was not checked")
        return verdict
    if allow_cpu:
        report.note(f"warning: {verdict.problem} (--allow-cpu: going on; {verdict.placement.describe()})")
        return verdict
    raise WrongDevice(f"{verdict.problem} ({verdict.placement.describe()}); {verdict.fix}")
