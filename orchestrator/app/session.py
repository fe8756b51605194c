"""What every command is handed: the renderer (for progress, questions and the outcome), the command's
one plan made from its arguments, and the real executors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from orchestrator.app.inputs import Request, plan_for
from orchestrator.app.plan_options import flags
from orchestrator.app.render import Renderer
from orchestrator.app.steps.context import Executors
from orchestrator.core.plan import Plan
from orchestrator.core.plan.programs import SEED_PROMPT, BenchOverride
from orchestrator.executors.docker import DockerEngine
from orchestrator.executors.host import LocalHost


@dataclass(frozen=True)
class Session:
    render: Renderer

    def plan(
        self,
        args: argparse.Namespace,
        *,
        prompt: str = SEED_PROMPT,
        bench_override: BenchOverride | None = None,
        companions_optional: bool = False,
    ) -> Plan:
        """The command's one plan, from its plan options (companions_optional: see Request)."""
        return plan_for(Request(flags(args), bench_override, prompt, companions_optional))

    def executors(self) -> Executors:
        return Executors(DockerEngine(), LocalHost())
