"""The server as other steps need it: waiting until it is ready (or saying, with its log, why it is
not), replacing what serves, a private one for a benchmark, and running a one-off program beside it
(counted beside it, or with it stopped for the run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from orchestrator.app.steps.context import Reporter
from orchestrator.app.steps.devices import check_devices
from orchestrator.core.devices import Placement
from orchestrator.core.memory_plan import out_of_memory
from orchestrator.core.plan import Plan
from orchestrator.core.plan.server import Address
from orchestrator.core.preflight import check_beside_server
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors.health import wait_until_ready
from orchestrator.executors.server_state import Runtime


class ServeFailed(OrchestratorError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def await_ready(plan: Plan, runtime: Runtime, report: Reporter, at: Address | None = None) -> None:
    """Wait for /health (where the plan publishes the server, or at) with the server's latest log line
    on screen; a server that fails or never gets ready is an error carrying the end of its log."""

    def last_line() -> str:
        lines = [line for line in runtime.logs(plan, tail=5) if line.strip()]
        return lines[-1] if lines else ""

    with report.waiting("loading the model") as view:
        last = wait_until_ready(
            lambda: runtime.probe(plan, at),
            timeout_s=plan.wait_timeout_s,
            on_tick=lambda p, t: view.update(p, t, last_line()),
        )
    if last.readiness != "ready":
        reason = (
            last.detail
            if last.readiness == "failed"
            else f"not ready after {plan.wait_timeout_s} s ({last.detail})"
        )
        if last.out_of_memory:
            reason = f"out of memory: {out_of_memory(plan.memory)} ({last.detail})"
        tail = "\n".join(runtime.logs(plan, tail=25))
        raise ServeFailed(f"llama-server did not become ready: {reason}; its log ends above", tail)


def start_or_go_back(
    plan: Plan,
    runtime: Runtime,
    report: Reporter,
    validate: Callable[[], None] = lambda: None,
    *,
    keep_failed: bool = False,
) -> bool:
    """Start the plan's server in place of what serves under its name, wait until it is ready and
    validate it (validate raises an OrchestratorError: the devices are not the plan's, ...). Where it
    fails, what served before is started again and the error says what failed and that the previous
    server serves again; with nothing before, a server that failed its validation is stopped. Whether a
    server was started (False: this very one ran, kept). The one way a server is replaced; everything
    that can refuse the plan has run before it. keep_failed: a server that got ready but failed its
    validation is left running for inspection instead."""
    before = runtime.deployed(plan)
    if not runtime.start(plan):
        report.note(f"llama-server is already running with this plan (pid {runtime.state(plan).pid}); kept")
        await_ready(plan, runtime, report)
        return False
    try:
        await_ready(plan, runtime, report)
        validate()
    except OrchestratorError as failure:
        if keep_failed and not isinstance(failure, ServeFailed):
            raise again_as(
                failure, f"{failure}; the new server is kept running for inspection (--keep)"
            ) from None
        if before is None:
            if not isinstance(failure, ServeFailed):
                runtime.stop(plan)
                raise again_as(failure, f"{failure}; the server is stopped") from None
            raise
        report.note(
            f"the new server failed ({failure}); starting the one that served before ({before.address.url})"
        )
        runtime.restore(plan, before)
        try:
            await_ready(plan, runtime, report, at=before.address)
        except ServeFailed as again:
            raise again_as(
                failure, f"{failure}; starting the previous server again failed too: {again}"
            ) from None
        raise again_as(
            failure, f"{failure}; the previous server is serving again at {before.address.url}"
        ) from None
    return True


def again_as(failure: OrchestratorError, message: str) -> OrchestratorError:
    """The same failure (its kind, exit code and log) with more said."""
    if isinstance(failure, ServeFailed):
        return ServeFailed(message, failure.log_tail or "")
    raised = type(failure)(message)
    raised.log_tail = failure.log_tail
    return raised


@contextmanager
def private_server(plan: Plan, runtime: Runtime, report: Reporter, *, allow_cpu: bool) -> Iterator[Placement]:
    """A server of the command's own (a benchmark's, its own project on a free port: for_serving_bench)
    started, ready and its devices checked, for the run; stopped however the run ends. Gives where
    llama.cpp put the model."""
    runtime.start(plan)
    try:
        await_ready(plan, runtime, report)
        yield check_devices(plan, runtime.logs(plan, tail=None), report, allow_cpu=allow_cpu).placement
    finally:
        runtime.stop(plan)


@contextmanager
def beside_server(
    plan: Plan, runtime: Runtime, report: Reporter, uses: Sequence[str], *, force: bool, stop_server: bool
) -> Iterator[None]:
    """A one-off run while this plan's server may be up: counted beside it, or (--stop-server) with the
    server stopped for the run and started again after it, however the run ends."""
    if not runtime.state(plan).running:
        yield
        return
    if plan.rpc and not stop_server:
        raise UsageError(
            "this plan's server is up and holds its RPC workers (rpc-server serves one client at a time); "
            "pass --stop-server to stop it for this run"
        )
    if not stop_server:
        check_beside_server(plan, force, uses)
        yield
        return
    report.note("stopping the running server for this run (--stop-server); it starts again afterwards")
    runtime.stop(plan)
    try:
        yield
    finally:
        report.note("starting the server again")
        runtime.start(plan)
        await_ready(plan, runtime, report)
