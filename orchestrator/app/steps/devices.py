"""The device check every command that loads the model runs: where llama.cpp says it put the weights and
the KV cache, against where the target needs them; refused (exit 6) or, with --allow-cpu, warned."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from orchestrator.app.steps.context import Reporter
from orchestrator.core.devices import Placement, Verdict, judge, read_placement
from orchestrator.core.plan import Plan
from orchestrator.errors import WrongDevice
from orchestrator.files import write_atomic


def placement_verdict(plan: Plan, lines: Iterable[str], *, recall: bool = False) -> Verdict:
    """Where the log's last load put the model; with recall, for a server whose log no longer holds its
    load (Docker rotates it), where `up` saw it put."""
    placement = read_placement(lines)
    if recall and not placement.found:
        placement = recalled(plan)
    return judge(
        placement,
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


def _record(plan: Plan) -> Path:
    return plan.data_dir / "devices" / f"{plan.project}.json"


def remember(plan: Plan, placement: Placement) -> None:
    """Where the server `up` started put the model, for `status` once the log has rotated past it."""
    write_atomic(_record(plan), json.dumps(placement.to_dict(), indent=2) + "\n")


def recalled(plan: Plan) -> Placement:
    try:
        return Placement.from_dict(json.loads(_record(plan).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return Placement()
