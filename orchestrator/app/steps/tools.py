"""Running one of the shipped llama.cpp tools over the owner's files (eval, quantize): its image built or
pulled first, the run counted beside a running server, its output kept and its last lines shown when it
fails."""

from __future__ import annotations

import shlex
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.app.outcomes import Screen
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.jobs import ToolJob
from orchestrator.errors import ExitCode, OrchestratorError
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


@dataclass(frozen=True)
class ToolsPlanned:
    """--dry-run: the runs a command would make, checked, none of them run."""

    where: str
    runs: tuple[tuple[str, ToolJob, tuple[str, ...]], ...]

    def show(self, screen: Screen) -> ExitCode:
        if screen.as_json:
            screen.json(
                {
                    "runs_in": self.where,
                    "runs": [
                        {
                            "step": label,
                            "argv": list(argv),
                            "reads": [str(p) for p in job.inputs()],
                            "writes": str(job.output),
                        }
                        for label, job, argv in self.runs
                    ],
                }
            )
            return ExitCode.OK
        screen.out.print(f"would run in {self.where} (nothing was run):")
        for label, job, argv in self.runs:
            reads = ", ".join(str(p) for p in job.inputs())
            screen.out.print(f"  {label}: {shlex.join(argv)}")
            screen.out.print(f"    reads {reads} (read-only); writes {job.output}")
        return ExitCode.OK


def planned_tools(plan: Plan, jobs: Sequence[tuple[str, ToolJob]]) -> ToolsPlanned:
    build = plan.build
    where = f"the image {build.tag}" if isinstance(build, ImageBuild) else f"the native build {build.prefix}"
    return ToolsPlanned(where, tuple((label, job, job.argv_for(build)) for label, job in jobs))
