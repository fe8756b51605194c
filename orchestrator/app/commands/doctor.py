"""`doctor`: everything the target needs of this host, probed once (the host, Docker for container
targets, the disk, each RPC worker and the link to it, the image's labels), judged by the pure checks in
orchestrator.core.doctor, each problem with its fix."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from orchestrator.app.options import Commands, command
from orchestrator.app.outcomes import Screen
from orchestrator.app.session import Session
from orchestrator.app.steps.probing import doctor_facts
from orchestrator.core.doctor import Check, diagnose
from orchestrator.errors import ExitCode


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


def doctor_table(target: str, checks: Sequence[Check]) -> Table:
    table = Table(title=f"doctor: {target}", show_header=True, box=None, title_justify="left")
    for column in ("", "check", "finding", "fix"):
        table.add_column(column)
    marks = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(marks[check.status], check.name, check.detail, check.fix or "")
    return table
