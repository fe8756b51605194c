"""RPC workers, as the commands use them: `worker up/down/status/logs` on the extra machine, and what the
head checks of its workers before it starts (each answers, each speaks the head's protocol)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.app.workflow import Executors, Reporter, build
from orchestrator.core.plan import Plan
from orchestrator.core.rpc import Endpoint
from orchestrator.core.worker import WorkerPlan, worker_place, worker_plan
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors import workers
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.rpc import Hello
from orchestrator.executors.workers import WorkerState

_READY_TIMEOUT_S = 120


@dataclass(frozen=True)
class WorkerStarted:
    plan: WorkerPlan
    build: BuildOutcome
    hello: Hello
    kept: bool


@dataclass(frozen=True)
class WorkerStopped:
    was_running: bool


@dataclass(frozen=True)
class WorkerStatus:
    state: WorkerState
    answers: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "answers": self.answers}


def worker_up(plan: Plan, listen: Endpoint, ex: Executors, report: Reporter) -> WorkerStarted:
    """Build (or reuse) the target's image and run its rpc-server on one address, until it answers."""
    worker = worker_plan(plan, listen)
    ex.engine.require(buildx=True, compose=True)
    report.note(f"warning: {worker.warning}")
    built = build(plan, ex, report, rebuild=False)
    worker = worker_plan(built.plan, listen)
    current = workers.state(ex.engine, worker.place)
    kept = current.running and current.listen == str(listen) and current.image == worker.image
    if not kept:
        if current.running:
            workers.stop(ex.engine, worker.place)
        if not ex.host.address_free(listen.host, listen.port):
            raise UsageError(
                f"nothing can listen on {listen} here: the address is not this machine's, or the port is "
                "taken; give an address of this machine on the link (ip -brief address) and a free port"
            )
        workers.start(ex.engine, worker)
    hello = _await_answer(ex, worker)
    return WorkerStarted(worker, built.outcome, hello, kept)


def _await_answer(ex: Executors, worker: WorkerPlan) -> Hello:
    def ask() -> Hello:
        if not workers.state(ex.engine, worker.place).running:
            return Hello(worker.listen, None, "the worker's container is not running")
        return ex.host.rpc_hello(worker.listen)

    retrying = Retrying(
        stop=stop_after_delay(_READY_TIMEOUT_S),
        wait=wait_fixed(1),
        retry=retry_if_result(lambda h: h.version is None),
    )
    try:
        hello: Hello = retrying(ask)
        return hello
    except RetryError as exc:
        last = exc.last_attempt.result()
        tail = " | ".join(list(workers.logs(ex.engine, worker.place, tail=3, follow=False)))
        raise OrchestratorError(
            f"the worker on {worker.listen} did not answer within {_READY_TIMEOUT_S} s ({last.problem}); "
            f"its log ends: {tail or 'empty'}"
        ) from None


def worker_down(plan: Plan, ex: Executors) -> WorkerStopped:
    ex.engine.require(compose=True)
    return WorkerStopped(workers.stop(ex.engine, worker_place(plan)))


def worker_status(plan: Plan, ex: Executors) -> WorkerStatus:
    ex.engine.require(compose=True)
    state = workers.state(ex.engine, worker_place(plan))
    answers = None
    if state.running and state.listen:
        from orchestrator.core.rpc import parse_listen

        answers = ex.host.rpc_reachable(parse_listen(state.listen))
    return WorkerStatus(state, answers)


def worker_logs(plan: Plan, ex: Executors, *, tail: int, follow: bool) -> Iterable[str]:
    ex.engine.require(compose=True)
    return workers.logs(ex.engine, worker_place(plan), tail=tail, follow=follow)
