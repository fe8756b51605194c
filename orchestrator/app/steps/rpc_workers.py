"""The head's look at its RPC workers: before it starts, each answers HELLO with the RPC protocol the
head's build speaks; while it runs, each port still takes a connection."""

from __future__ import annotations

from orchestrator.app.steps.context import Executors
from orchestrator.core.plan import Plan
from orchestrator.errors import UsageError
from orchestrator.executors.images import RPC_PROTOCOL_LABEL


def check_workers(plan: Plan, ex: Executors) -> None:
    """Before the head starts: every worker answers HELLO, with the protocol the head's build speaks."""
    if not plan.rpc:
        return
    image = plan.container.image if plan.container else None
    labels = (ex.engine.image_labels(image) or {}) if image else {}
    head = labels.get(RPC_PROTOCOL_LABEL)
    for endpoint in plan.rpc:
        hello = ex.host.rpc_hello(endpoint)
        if hello.version is None:
            raise UsageError(
                f"RPC worker {endpoint} does not answer ({hello.problem}); start it on that machine: "
                f"orchestrator worker up --target {plan.target} --listen {endpoint}"
            )
        if head is not None and hello.version_text != head:
            raise UsageError(
                f"RPC worker {endpoint} speaks RPC protocol {hello.version_text} but the head's image {image} "
                f"speaks {head}: the worker runs another build; run 'orchestrator worker up --target "
                f"{plan.target} --listen {endpoint}' there with the same source, so it runs {image}"
            )


def worker_answers(plan: Plan, ex: Executors) -> dict[str, bool]:
    """For a running head's status: whether each worker's port still accepts a connection."""
    return {str(endpoint): ex.host.rpc_reachable(endpoint) for endpoint in plan.rpc}
