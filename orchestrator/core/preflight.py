"""Whether a plan can run as it stands, decided from the plan alone: its model is there and sound, and
its programs fit in memory. Each refusal is one line that names the fix."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.plan import Plan
from orchestrator.errors import InvalidModel, UsageError, WontFit


def check_model(plan: Plan) -> None:
    if not plan.model.present:
        raise UsageError(
            f"model file {plan.model.path} is missing; fetch it with 'orchestrator model pull', or pass "
            "--model PATH to a GGUF"
        )
    if plan.model.problem:
        raise InvalidModel(plan.model.problem)


def check_memory(plan: Plan, force: bool, uses: Sequence[str] = ("server",)) -> None:
    """Refuse a workload the estimate says will not fit, naming the first fix; --force goes on."""
    failing = plan.memory.failing(uses)
    if failing and not force:
        row = failing[0]
        raise WontFit(f"{row.use}: {row.fit.verdict()}; or pass --force to try anyway")
