"""RPC workers on this machine: the worker's compose service started, stopped and read back, and the
head's look at the workers it is given (HELLO before it connects, a TCP connect while it runs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.core.worker import WORKER_SERVICE, WorkerPlace, WorkerPlan
from orchestrator.executors.engine import Engine, ServiceState
from orchestrator.executors.runtime import write_compose_document


@dataclass(frozen=True)
class WorkerState:
    state: str
    running: bool
    container: str | None = None
    image: str | None = None
    listen: str | None = None
    health: str | None = None
    restarts: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def start(engine: Engine, plan: WorkerPlan) -> None:
    write_compose_document(plan.compose_file, plan.compose, f"an RPC worker of target {plan.target}")
    engine.compose_up(plan.compose_file, plan.project)


def stop(engine: Engine, place: WorkerPlace) -> bool:
    """Stop and remove the worker; its cache volume (tensors it was sent) is kept."""
    if not place.compose_file.exists():
        return False
    engine.compose_down(place.compose_file, place.project)
    return True


def state(engine: Engine, place: WorkerPlace) -> WorkerState:
    service: ServiceState | None = engine.service(place.project, WORKER_SERVICE)
    if service is None:
        return WorkerState("not created", False)
    return WorkerState(
        state=service.state,
        running=service.state == "running",
        container=service.container,
        image=service.image,
        listen=service.labels.get("io.step-flash.listen"),
        health=service.health,
        restarts=service.restarts,
    )


def logs(engine: Engine, place: WorkerPlace, *, tail: int | None, follow: bool) -> Iterable[str]:
    return engine.service_logs(place.project, WORKER_SERVICE, tail=None if follow else tail, follow=follow)
