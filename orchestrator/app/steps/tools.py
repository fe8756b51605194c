"""Running one of the shipped llama.cpp tools over the owner's files (eval, quantize): its image built or
pulled first, the run counted beside a running server, its output kept and its last lines shown when it
fails."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.core.plan import Plan
from orchestrator.core.plan.jobs import ToolJob
from orchestrator.errors import OrchestratorError
from orchestrator.executors.engine import CommandFailed

# How much of a failed tool's output the error carries.
TAIL_LINES = 15


@dataclass(frozen=True)
class ToolRun:
    lines: tuple[str, ...]
    seconds: float


def ready_to_run(plan: Plan, ex: Executors, report: Reporter) -> Plan:
    """The plan with its image (or native install) there: the tools ship in every build."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    return build(plan, ex, report, rebuild=False).plan


def run_tool(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    job: ToolJob,
    *,
    shown: Callable[[str], bool] = lambda _l: False,
) -> ToolRun:
    """Run the job; the lines `shown` picks are noted as they come. A tool that fails raises one line
    with its exit code; its last lines go with it."""
    started = time.monotonic()
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        for line in ex.runtime(plan).tool(plan, job):
            lines.append(line)
            tail.append(line)
            if shown(line):
                report.note(line.strip())
    except CommandFailed as failure:
        error = OrchestratorError(f"{job.program} failed (exit code {failure.program_exit_code})")
        error.log_tail = "\n".join(tail)
        raise error from None
    return ToolRun(tuple(lines), time.monotonic() - started)
