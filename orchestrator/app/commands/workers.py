"""`worker up/down/status/logs`: an RPC worker on this machine, llama.cpp's rpc-server from the very image
the head of the same target runs, on one private address, lending its memory and GPU to a head."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.app.options import Commands, command, group
from orchestrator.app.outcomes import Lines, Screen
from orchestrator.app.render import build_text
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.core.exposure import is_loopback
from orchestrator.core.plan import Plan
from orchestrator.core.rpc import Endpoint, check_listen, firewall_rules, parse_head, parse_listen
from orchestrator.core.worker import WorkerPlan, worker_place, worker_plan
from orchestrator.errors import ExitCode, OrchestratorError, UsageError
from orchestrator.executors import workers
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.rpc import Hello
from orchestrator.executors.workers import WorkerState


def register(commands: Commands) -> None:
    worker = group(commands, "worker", "up|down|status|logs")
    p = command(
        worker,
        "up",
        help="run llama.cpp's rpc-server from the target's image on one private address of this machine",
        handler=_up,
        plan=True,
        writes="data",
    )
    p.add_argument(
        "--listen",
        required=True,
        type=parse_listen,
        help="ADDRESS[:PORT] on the direct link (default port 50052); never 0.0.0.0, a public, CGNAT or "
        "container-bridge address: rpc-server has no authentication",
    )
    p.add_argument(
        "--head",
        type=parse_head,
        help="the head's ADDRESS on the same link: the one machine that may reach this worker (needed "
        "beyond loopback)",
    )
    p.add_argument(
        "--firewall",
        action="store_true",
        help="load the nftables rule that admits only the head to the worker's port (as root)",
    )
    command(
        worker,
        "down",
        help="stop and remove this machine's worker; its tensor cache is kept",
        handler=lambda s, a: worker_down(s.plan(a), s.executors()),
        plan=True,
        writes="data",
    )
    command(
        worker,
        "status",
        help="whether this machine's worker runs and answers",
        handler=lambda s, a: worker_status(s.plan(a), s.executors()),
        plan=True,
        as_json="print JSON",
    )
    p = command(
        worker,
        "logs",
        help="the worker's log",
        handler=lambda s, a: Lines(worker_logs(s.plan(a), s.executors(), tail=a.tail, follow=a.follow)),
        plan=True,
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=200, help="lines to show (default 200)")


def _up(session: Session, args: argparse.Namespace) -> WorkerStarted:
    return worker_up(
        session.plan(args),
        args.listen,
        session.executors(),
        session.render.reporter(),
        head=args.head,
        firewall=args.firewall,
    )


_READY_TIMEOUT_S = 120


@dataclass(frozen=True)
class WorkerStarted:
    plan: WorkerPlan
    build: BuildOutcome
    hello: Hello
    kept: bool
    # The nftables ruleset that admits only the head (None: on loopback), and whether it was loaded.
    firewall: str | None = None
    firewall_loaded: bool = False

    def show(self, screen: Screen) -> ExitCode:
        screen.out.print(build_text(self.build))
        how = "kept: already running with this image and address" if self.kept else "started"
        worker = self.plan
        screen.out.print(
            f"RPC worker {how}: rpc-server on {worker.listen} ({worker.image}), protocol "
            f"{self.hello.version_text}; on the head: orchestrator up --target {worker.target} "
            f"--rpc {worker.listen}"
        )
        if self.firewall is not None:
            said = (
                "loaded (nft), admitting only the head and this machine; not kept across a reboot (add it "
                "to /etc/nftables.conf for that)"
                if self.firewall_loaded
                else "NOT loaded, so the worker's port is open to the whole link: as root, "
                "'orchestrator worker up ... --firewall' loads it, or 'nft -f FILE'"
            )
            screen.out.print(f"firewall rule for the worker's port, {said}:\n{self.firewall}")
        return ExitCode.OK


@dataclass(frozen=True)
class WorkerStopped:
    was_running: bool

    def show(self, screen: Screen) -> ExitCode:
        screen.out.print(
            "stopped and removed the worker; its tensor cache volume is kept"
            if self.was_running
            else "nothing to stop: no worker was started here"
        )
        return ExitCode.OK


@dataclass(frozen=True)
class WorkerStatus:
    state: WorkerState
    answers: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "answers": self.answers}

    def show(self, screen: Screen) -> ExitCode:
        screen.either(self.to_dict(), lambda: screen.out.print(_worker_line(self.state, self.answers)))
        return ExitCode.OK if self.state.running and self.answers is not False else ExitCode.NOT_RUNNING


def worker_up(
    plan: Plan,
    listen: Endpoint,
    ex: Executors,
    report: Reporter,
    *,
    head: str | None = None,
    firewall: bool = False,
) -> WorkerStarted:
    """Build (or reuse) the target's image and run its rpc-server on one address, until it answers. Beyond
    loopback it serves one head on its link, and the nftables rule that admits only that head is shown
    (loaded with firewall, as root)."""
    loopback = is_loopback(listen.host.split("%")[0])
    check_listen(listen, head, None if loopback else ex.host.link_address(listen.host))
    rules = firewall_rules(listen, head) if head is not None and not loopback else None
    if firewall and rules is None:
        raise UsageError("--firewall goes with a worker beyond loopback and its --head")
    if firewall and os.geteuid() != 0:
        raise UsageError(
            "--firewall loads an nftables rule and needs root; run it with sudo, or load the rule yourself"
        )
    if firewall and rules is not None:
        # Before the worker starts: it is never reachable from the link without its rule, and a rule
        # nft refuses (or no nft) stops here, with nothing started.
        ex.host.apply_firewall(rules)
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
    return WorkerStarted(worker, built.outcome, hello, kept, rules, firewall)


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
        answers = ex.host.rpc_reachable(parse_listen(state.listen))
    return WorkerStatus(state, answers)


def worker_logs(plan: Plan, ex: Executors, *, tail: int, follow: bool) -> Iterable[str]:
    ex.engine.require(compose=True)
    return workers.logs(ex.engine, worker_place(plan), tail=tail, follow=follow)


def _worker_line(state: WorkerState, answers: bool | None) -> str:
    if not state.running:
        return f"worker: {state.state}"
    reply = "answers" if answers else "does not answer"
    return f"worker: {state.state} on {state.listen} ({state.image}), {reply}; container {state.container}"
