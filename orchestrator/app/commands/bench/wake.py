"""`bench serve --wake`: what llama-server's sleep costs. The planned server is started for the run with a
short idle time of its own, answers a request awake, is left until it sleeps (its model freed), and is
asked again: the time to the first token after the sleep, beside the same time awake, and what its
container held awake, asleep and woken. Recorded beside the other benchmark records."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.app.commands.bench.batched import prepared, provenance
from orchestrator.app.outcomes import Screen
from orchestrator.app.render import kv_table
from orchestrator.app.results import append_record
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.serving import beside_server, private_server
from orchestrator.core.plan import Plan, for_serving_bench
from orchestrator.core.speculation import OFF
from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.executors.server_state import Runtime, api_key

WAKE_KIND = "wake"
# The bench server's own idle time: long enough to answer the awake requests, short enough for a run of
# seconds (the target's own is half an hour).
BENCH_IDLE_S = 2
ONE_TOKEN = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 1, "temperature": 0}
# Before the awake figures: an answer of some length, so the server holds what serving holds.
WARM_UP = {
    "messages": [{"role": "user", "content": "Tell a short story."}],
    "max_tokens": 128,
    "temperature": 0,
}


@dataclass(frozen=True)
class WakeRecord:
    run_id: str
    started: float
    target: str
    profile: str
    idle_s: int
    # Seconds from a one-token request to its answer: awake, and the first request after the sleep.
    first_token_awake_s: float | None
    first_token_after_sleep_s: float | None
    # Seconds from the last answer until the server said it sleeps.
    fell_asleep_after_s: float | None
    # Bytes its container held (docker stats): awake, asleep, and once woken.
    memory: Mapping[str, int | None]
    model: Mapping[str, Any]
    build: Mapping[str, Any]
    host: Mapping[str, Any]
    error: str | None = None
    kind: str = field(default=WAKE_KIND)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def bench_wake(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    results: Path,
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
    allow_cpu: bool = False,
) -> WakeRecord:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = prepared(plan, ex, report, ("server",), force=force, decisions=decisions)
    common = provenance(plan, ex)
    with beside_server(plan, runtime, report, ("server",), force=force, stop_server=stop_server):
        variant = for_serving_bench(plan, OFF, ex.host.free_port(plan.publish.host), idle=BENCH_IDLE_S)
        report.note(f"wake-up benchmark: the server sleeps after {BENCH_IDLE_S} s without a request")
        record = _measure(variant, ex, runtime, report, common, allow_cpu)
    append_record(results, record)
    return record


def _measure(
    plan: Plan, ex: Executors, runtime: Runtime, report: Reporter, common: Mapping[str, Any], allow_cpu: bool
) -> WakeRecord:
    started = time.time()
    memory: dict[str, int | None] = {}
    awake = after_sleep = fell_asleep = None
    error = None
    key = api_key(plan)

    def one_token() -> float:
        began = time.monotonic()
        ex.host.chat(plan.base_url, key, ONE_TOKEN, trust=plan.trust)
        return time.monotonic() - began

    measuring = False
    try:
        with private_server(plan, runtime, report, allow_cpu=allow_cpu):
            measuring = True
            ex.host.chat(plan.base_url, key, WARM_UP, trust=plan.trust)
            awake = one_token()
            answered = time.monotonic()
            memory["awake"] = runtime.state(plan).memory_bytes
            deadline = answered + BENCH_IDLE_S + 60
            while not ex.host.props(plan.base_url, key, trust=plan.trust).get("is_sleeping"):
                if time.monotonic() > deadline:
                    raise OrchestratorError(
                        f"the server did not sleep within {BENCH_IDLE_S + 60} s of idleness"
                    )
                time.sleep(0.25)
            fell_asleep = time.monotonic() - answered
            time.sleep(1)  # let the freed memory show in docker stats
            memory["asleep"] = runtime.state(plan).memory_bytes
            after_sleep = one_token()
            memory["woken"] = runtime.state(plan).memory_bytes
    except OrchestratorError as failure:
        if not measuring:
            raise  # the server never served (a port in use, a load that failed): nothing to record
        error = str(failure)
    return WakeRecord(
        run_id=uuid.uuid4().hex[:12],
        started=started,
        target=plan.target,
        profile=plan.profile,
        idle_s=plan.idle_s,
        first_token_awake_s=None if awake is None else round(awake, 3),
        first_token_after_sleep_s=None if after_sleep is None else round(after_sleep, 3),
        fell_asleep_after_s=None if fell_asleep is None else round(fell_asleep, 2),
        memory=memory,
        model=dict(common["model"]),
        build=dict(common["build"]),
        host=dict(common["host"]),
        error=error,
    )


@dataclass(frozen=True)
class WakeDone:
    record: WakeRecord
    results: Path

    def show(self, screen: Screen) -> ExitCode:
        r = self.record

        def mib(name: str) -> str:
            value = r.memory.get(name)
            return "-" if value is None else f"{value / (1 << 20):.0f} MiB"

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f} s"

        rows = [
            ("first token, awake", seconds(r.first_token_awake_s)),
            ("first token after the sleep", seconds(r.first_token_after_sleep_s)),
            ("asleep after", seconds(r.fell_asleep_after_s) + f" (idle set to {r.idle_s} s)"),
            ("memory awake / asleep / woken", f"{mib('awake')} / {mib('asleep')} / {mib('woken')}"),
        ]
        screen.either(asdict(r), lambda: screen.out.print(kv_table(rows)))
        screen.live.print(f"recorded in {self.results / 'bench.jsonl'}")
        if r.error:
            raise OrchestratorError(f"wake-up benchmark incomplete: {r.error}; kept as recorded")
        return ExitCode.OK
