"""The checks before anything starts: the model there (the demo one written, a hub model pulled when
wanted), sound and fitting in memory; the API key file; and the profile's host steps."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from orchestrator.app.steps.context import Reporter
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.core.plan import Plan, with_model
from orchestrator.core.preflight import check_memory, check_model
from orchestrator.executors.host import Host
from orchestrator.models.hub import PullPlan
from orchestrator.models.local import refresh, write_demo_model
from orchestrator.models.pull import PullReport
from orchestrator.models.pull import pull as pull_model


def checked(plan: Plan, report: Reporter, memory_uses: Sequence[str], force: bool) -> Plan:
    """The plan once its model is there (the demo one written when wanted), sound, and fits in memory."""
    if write_demo_model(plan.model, plan.data_dir / "cache"):
        report.note(f"wrote the demo model to {plan.model.path}")
        plan = with_model(plan, refresh(plan.model, plan.data_dir / "cache" / "gguf.json"))
    check_model(plan)
    check_memory(plan, force, memory_uses)
    return plan


def fetched(plan: Plan, report: Reporter, pull: bool | None) -> Plan:
    """The plan with its hub model on disk: pulled when told to, or when asked and the answer is yes.
    Without a terminal and without --pull it stays missing, and the preflight says how to fetch it."""
    ref = next((r for r in KNOWN_MODELS.values() if r.origin == plan.model.origin), None)
    if plan.model.present or ref is None or ref.repo is None or pull is False:
        return plan
    ask = report.ask
    if pull is None and ask is None:
        return plan

    def confirm(listing: PullPlan) -> bool:
        if pull or ask is None:
            return True
        folder = listing.destination
        while not folder.exists():
            folder = folder.parent
        free = shutil.disk_usage(folder).free / 2**30
        return ask(
            f"{plan.model.alias} is not here: pull {listing.repo} ({listing.missing_bytes() / 2**30:.1f} GiB, "
            f"{free:.1f} GiB free at {folder})?"
        )

    settings = plan.inputs.settings
    pulled = pull_model(
        ref.name,
        settings.models_dir,
        plan.data_dir,
        PullReport(note=report.note, transfer=report.transfer),
        confirm=confirm,
    )
    model = replace(plan.model, path=Path(pulled.entry.path))
    return with_model(plan, refresh(model, plan.data_dir / "cache" / "gguf.json"))


def run_host_steps(plan: Plan, host: Host, report: Reporter, decisions: Mapping[str, bool | None]) -> None:
    for result in host.run_steps(plan.hooks, decisions=decisions, ask=report.ask):
        report.note(result.message)
