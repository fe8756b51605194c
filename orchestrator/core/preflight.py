"""Whether a plan can run as it stands, decided from the plan alone: its model is there and sound, and
its programs fit in memory. Each refusal is one line that names the fix."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.memory import GIB
from orchestrator.core.plan import Plan
from orchestrator.errors import InvalidModel, UsageError, WontFit


def check_model(plan: Plan) -> None:
    if not plan.model.present:
        raise UsageError(
            f"model file {plan.model.path} is missing; fetch it with 'orchestrator model pull' (or "
            "'orchestrator up --pull'), or pass --model PATH to a GGUF"
        )
    if plan.model.problem:
        raise InvalidModel(plan.model.problem)


def check_memory(plan: Plan, force: bool, uses: Sequence[str] = ("server",)) -> None:
    """Refuse a workload the estimate says will not fit, naming the first fix; --force goes on."""
    failing = plan.memory.failing(uses)
    if failing and not force:
        row = failing[0]
        raise WontFit(f"{row.use}: {row.fit.verdict()}; or pass --force to try anyway")


def check_beside_server(plan: Plan, force: bool, uses: Sequence[str]) -> None:
    """A one-off run while this plan's server holds its own copy of the model: both must fit, or the
    run is refused with the two ways out (a second 100 GB load on a unified-memory box is not tried)."""
    server = next((r for r in plan.memory.rows if r.use == "server"), None)
    if server is None or force:
        return
    held = server.fit.estimate.total
    # llama-cli loads what the server loads; each benchmark set has its own row.
    needs = [("run", server)] if "run" in uses else []
    needs += [(row.use, row) for row in plan.memory.rows if row.use != "server" and row.named_by(uses)]
    for use, row in needs:
        usable = row.fit.usable
        if usable is not None and row.fit.estimate.total + held > usable:
            raise WontFit(
                f"{use} needs {row.fit.estimate.total / GIB:.1f} GiB beside the running server's "
                f"{held / GIB:.1f} GiB, but {usable / GIB:.1f} GiB is usable: stop the server first "
                "('orchestrator down'), or pass --stop-server to stop it, run, and start it again"
            )
