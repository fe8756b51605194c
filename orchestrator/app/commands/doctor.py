"""`doctor`: everything the target needs of this host, probed once (the host, Docker for container
targets, the disk, each RPC worker and the link to it, the image's labels), judged by the pure checks in
orchestrator.core.doctor, each problem with its fix."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from orchestrator.app.options import Commands, command
from orchestrator.app.outcomes import Screen
from orchestrator.app.session import Session
from orchestrator.app.steps.context import Executors
from orchestrator.core.doctor import Check, DoctorFacts, WorkerFacts, diagnose
from orchestrator.core.plan import Plan
from orchestrator.core.rpc import Endpoint
from orchestrator.errors import ExitCode
from orchestrator.executors.host import Host
from orchestrator.executors.images import DRIVER_LABEL, RPC_PROTOCOL_LABEL


def register(commands: Commands) -> None:
    command(
        commands,
        "doctor",
        _doctor,
        plan=True,
        as_json="print JSON",
    )


def _doctor(session: Session, args: argparse.Namespace) -> Diagnosis:
    plan = session.plan(args)
    return Diagnosis(plan.target, tuple(diagnose(plan, doctor_facts(plan, session.executors()))))


@dataclass(frozen=True)
class Diagnosis:
    target: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def show(self, screen: Screen) -> ExitCode:
        screen.either(
            {"target": self.target, "checks": [c.to_dict() for c in self.checks]},
            lambda: screen.out.print(doctor_table(self.target, self.checks)),
        )
        return ExitCode.FAILED if self.failed else ExitCode.OK


def doctor_facts(plan: Plan, ex: Executors) -> DoctorFacts:
    """Everything `doctor` judges, probed once: the host, Docker (for container targets), the disk."""
    folder = plan.model.path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    image = plan.container.image if plan.container else None
    engine = ex.engine.versions() if plan.runtime == "container" else None
    # The image's labels only from an engine that answers: doctor reports a missing one, it never trips on it.
    reachable = engine is not None and engine.error is None
    labels = (ex.engine.image_labels(image) or {}) if image and reachable else {}
    return DoctorFacts(
        host=plan.inputs.facts,
        engine=engine,
        disk_free_bytes=shutil.disk_usage(folder).free if folder.exists() else None,
        disk_path=str(folder),
        workers=tuple(_worker_facts(ex.host, endpoint) for endpoint in plan.rpc),
        head_protocol=labels.get(RPC_PROTOCOL_LABEL),
        image_driver=labels.get(DRIVER_LABEL),
    )


def _worker_facts(host: Host, endpoint: Endpoint) -> WorkerFacts:
    hello = host.rpc_hello(endpoint)
    link = host.rpc_link(endpoint)
    return WorkerFacts(
        str(endpoint),
        hello.version_text if hello.version else None,
        hello.problem,
        link.interface,
        link.speed_mbps,
        link.mtu,
    )


def doctor_table(target: str, checks: Sequence[Check]) -> Table:
    table = Table(title=f"doctor: {target}", show_header=True, box=None, title_justify="left")
    for column in ("", "check", "finding", "fix"):
        table.add_column(column)
    marks = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(marks[check.status], check.name, check.detail, check.fix or "")
    return table
