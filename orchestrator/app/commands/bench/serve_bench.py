"""`bench serve`: the planned server with speculative decoding off, then on, each started for the run as
its own compose project on a free port, sent a fixed prompt set at temperature 0 with each client count,
both recorded and compared (speed, acceptance, and whether the greedy texts are the same)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from orchestrator.app.commands.bench.batched import prepared, provenance
from orchestrator.app.outcomes import Screen
from orchestrator.app.results import append_record
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.serving import beside_server, private_server
from orchestrator.core.devices import Placement
from orchestrator.core.plan import Plan, for_serving_bench
from orchestrator.core.serve_bench import (
    Divergence,
    Prompt,
    ServeRecord,
    ServeRow,
    ServeSample,
    compare_serving,
    divergences,
    divergent,
    prompt_set,
    request_body,
    sample_from_response,
    token_margins,
)
from orchestrator.core.speculation import OFF
from orchestrator.errors import ExitCode, OrchestratorError, UsageError
from orchestrator.executors.host import Host, ServerRequestFailed
from orchestrator.executors.server_state import Runtime, api_key


@dataclass(frozen=True)
class ServingComparison:
    off: ServeRecord
    on: ServeRecord

    @property
    def rows(self) -> list[ServeRow]:
        return compare_serving(self.off, self.on)

    @property
    def divergent(self) -> list[str]:
        return divergent(self.off, self.on)

    @property
    def near_ties(self) -> list[Divergence]:
        return [d for d in divergences(self.off, self.on) if d.near_tie]


def bench_serve(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    results: Path,
    clients: Sequence[int],
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
    allow_cpu: bool = False,
) -> ServingComparison:
    """The plan's server with speculation off, then on, each started for the run on a free port and
    sent the prompt set at each client count; both recorded, and compared."""
    speculation = plan.speculation
    if not speculation.active:
        why = speculation.fallback or f"the {plan.profile} profile does not speculate"
        raise UsageError(
            f"bench serve compares speculative decoding off and on, and it would be off: {why}; "
            "pass --spec mtp (a model with MTP heads) or --spec ngram-mod"
        )
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = prepared(plan, ex, report, ("server",), force=force, decisions=decisions)
    common = provenance(plan, ex)
    comparison = uuid.uuid4().hex[:12]
    measured = []
    with beside_server(plan, runtime, report, ("server",), force=force, stop_server=stop_server):
        for wanted in (OFF, speculation.requested):
            variant = for_serving_bench(plan, wanted, ex.host.free_port(plan.publish.host))
            report.note(f"serving benchmark: speculative decoding {variant.speculation.describe()}")
            record = _serve_once(variant, ex, runtime, report, clients, common, comparison, allow_cpu)
            append_record(results, record)
            measured.append(record)
    return ServingComparison(measured[0], measured[1])


def _serve_once(
    plan: Plan,
    ex: Executors,
    runtime: Runtime,
    report: Reporter,
    clients: Sequence[int],
    common: Mapping[str, Any],
    comparison: str,
    allow_cpu: bool,
) -> ServeRecord:
    started = time.time()
    samples: list[ServeSample] = []
    rounds: dict[str, float] = {}
    margins: dict[str, list[tuple[int, float]]] = {}
    error = None
    placement = Placement()
    try:
        with private_server(plan, runtime, report, allow_cpu=allow_cpu) as placement:
            key = api_key(plan)
            prompts = prompt_set(plan.memory.rows[0].workload.ctx if plan.memory.rows else 4096)
            # One request first, not recorded: the first after a start pays for warm-up.
            _timed_chat(ex.host, plan, key, prompts[0])
            for count in clients:
                for prompt in prompts:
                    began = time.monotonic()
                    with ThreadPoolExecutor(max_workers=count) as pool:
                        answers = list(
                            pool.map(_timed_chat, *zip(*[(ex.host, plan, key, prompt)] * count, strict=True))
                        )
                    rounds[f"{prompt.name}@{count}"] = time.monotonic() - began
                    samples += [
                        sample_from_response(prompt.name, count, answer, wall) for answer, wall in answers
                    ]
            if not plan.speculation.active:
                for prompt in prompts:
                    body = request_body(prompt, margins=True)
                    margins[prompt.name] = token_margins(
                        ex.host.chat(plan.base_url, key, body, trust=plan.trust)
                    )
    except ServerRequestFailed as failure:
        error = str(failure)
    return ServeRecord(
        run_id=uuid.uuid4().hex[:12],
        comparison=comparison,
        started=started,
        finished=time.time(),
        target=plan.target,
        profile=plan.profile,
        speculation=str(plan.speculation.requested) if plan.speculation.active else "off",
        model=dict(common["model"]),
        build=dict(common["build"]),
        runtime={
            "argv": list(plan.server.argv),
            "speculation": plan.speculation.describe(),
            "rpc_workers": [str(w) for w in plan.rpc],
            "devices": placement.to_dict(),
        },
        host=dict(common["host"]),
        samples=samples,
        rounds=rounds,
        error=error,
        margins=margins,
    )


def _timed_chat(host: Host, plan: Plan, key: str | None, prompt: Prompt) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    answer = host.chat(plan.base_url, key, request_body(prompt), trust=plan.trust)
    return answer, time.monotonic() - began


@dataclass(frozen=True)
class ServingDone:
    comparison: ServingComparison
    results: Path

    def show(self, screen: Screen) -> ExitCode:
        comparison = self.comparison
        screen.either(serving_data(comparison), lambda: screen.out.print(serving_table(comparison)))
        screen.live.print(f"recorded in {self.results / 'bench.jsonl'}")
        cut_short = comparison.off.error or comparison.on.error
        if cut_short:
            raise OrchestratorError(f"serving benchmark incomplete: {cut_short}; kept as recorded")
        for tie in comparison.near_ties:
            screen.live.print(
                f"{tie.prompt}: the texts part at a near tie (the two likeliest tokens {tie.margin:.3f} "
                "apart with speculation off), where a batch's other arithmetic may choose either"
            )
        if comparison.divergent:
            raise OrchestratorError(
                "with speculative decoding on, the greedy text of "
                f"{', '.join(comparison.divergent)} differs from the text with it off (one client); "
                "speculation should be lossless at temperature 0: report it with the records"
            )
        return ExitCode.OK


def serving_table(comparison: ServingComparison) -> Table:
    off, on = comparison.off, comparison.on
    table = Table(
        title=f"{on.target} {on.profile}: {on.model.get('alias')}, speculative decoding {off.speculation} vs "
        f"{on.speculation} ({on.runtime.get('speculation')})",
        title_justify="left",
    )
    columns = ("clients", "decode off t/s", "decode on t/s", "ratio", "aggregate ratio", "acceptance")
    for column in (*columns, "TTFT off / on ms", "identical text"):
        table.add_column(column, justify="right")
    for row in comparison.rows:
        table.add_row(
            str(row.clients),
            f"{row.decode_off:.2f}",
            f"{row.decode_on:.2f}",
            _ratio_text(row.ratio),
            _ratio_text(row.aggregate_ratio),
            "-" if row.acceptance is None else f"{row.acceptance:.0%} ({row.accepted}/{row.drafted})",
            f"{row.ttft_off_ms:.0f} / {row.ttft_on_ms:.0f}",
            f"{row.identical}/{row.compared}",
        )
    return table


def serving_data(comparison: ServingComparison) -> dict[str, Any]:
    return {
        "off": comparison.off.speculation,
        "on": comparison.on.speculation,
        "divergent": comparison.divergent,
        "near_ties": [d.__dict__ for d in comparison.near_ties],
        "rows": [
            {
                **row.__dict__,
                "ratio": row.ratio,
                "aggregate_ratio": row.aggregate_ratio,
                "acceptance": row.acceptance,
            }
            for row in comparison.rows
        ],
    }


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
