"""`bench serve`: the planned server with speculative decoding off, then with each setting of a sweep
(mtp:1, mtp:2, mtp:3 for a model with three MTP heads; the plan's own setting otherwise; --sweep names
others), each started for the run as its own compose project on a free port, sent a fixed prompt set at
temperature 0 with each client count, all recorded and each compared with off (speed, acceptance, and
whether the greedy texts are the same: the lossless check, per setting)."""

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
from orchestrator.core.bench import model_key
from orchestrator.core.devices import Placement
from orchestrator.core.plan import Plan, for_serving_bench
from orchestrator.core.reference import community_figures
from orchestrator.core.serve_bench import (
    Divergence,
    Prompt,
    ServeRecord,
    ServeRow,
    ServeSample,
    best_setting,
    compare_serving,
    divergences,
    divergent,
    model_label,
    prompt_set,
    request_body,
    sample_from_response,
    sweep_modes,
    token_margins,
)
from orchestrator.core.speculation import OFF, Speculative
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


@dataclass(frozen=True)
class ServingSweep:
    """Speculation off, and each setting measured against it in the same run (one model)."""

    off: ServeRecord
    comparisons: tuple[ServingComparison, ...]

    @property
    def ons(self) -> tuple[ServeRecord, ...]:
        return tuple(c.on for c in self.comparisons)

    @property
    def best(self) -> ServeRecord | None:
        return best_setting(self.off, self.ons)


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
    sweep: Sequence[Speculative] = (),
) -> ServingSweep:
    """The plan's server with speculation off, then with each setting of the sweep (sweep_modes), each
    started for the run on a free port and sent the prompt set at each client count; all recorded, and
    each compared with off."""
    speculation = plan.speculation
    if not speculation.active and not sweep:
        why = speculation.fallback or f"the {plan.profile} profile does not speculate"
        raise UsageError(
            f"bench serve compares speculative decoding off and on, and it would be off: {why}; "
            "pass --spec mtp (a model with MTP heads) or --spec ngram-mod"
        )
    # --spec mtp:N from the owner measures N alone; the profile's setting or a plain mtp, every count.
    chosen = plan.origin("speculative") != "default" and speculation.requested.draft_n is not None
    modes = sweep_modes(speculation, sweep, chosen=chosen)
    # Every setting planned before any server starts: one the model cannot run (mtp:4 with three heads)
    # stops here, in one line, with nothing started.
    variants = [for_serving_bench(plan, mode, plan.publish.port) for mode in modes]
    for mode, variant in zip(modes, variants, strict=True):
        if not variant.speculation.active:
            raise UsageError(f"bench serve --sweep {mode}: {variant.speculation.describe()}")
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = prepared(plan, ex, report, ("server",), force=force, decisions=decisions)
    common = provenance(plan, ex)
    comparison = uuid.uuid4().hex[:12]
    measured = []
    with beside_server(plan, runtime, report, ("server",), force=force, stop_server=stop_server):
        for wanted in (OFF, *modes):
            variant = for_serving_bench(plan, wanted, ex.host.free_port(plan.publish.host))
            report.note(f"serving benchmark: speculative decoding {variant.speculation.describe()}")
            record = _serve_once(variant, ex, runtime, report, clients, common, comparison, allow_cpu)
            append_record(results, record)
            measured.append(record)
    off = measured[0]
    return ServingSweep(off, tuple(ServingComparison(off, on) for on in measured[1:]))


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
    sweep: ServingSweep
    results: Path

    def show(self, screen: Screen) -> ExitCode:
        sweep = self.sweep
        screen.either(serving_data(sweep), lambda: _print_sweep(screen, sweep))
        screen.live.print(f"recorded in {self.results / 'bench.jsonl'}")
        cut_short = sweep.off.error or next((on.error for on in sweep.ons if on.error), None)
        if cut_short:
            raise OrchestratorError(f"serving benchmark incomplete: {cut_short}; kept as recorded")
        for comparison in sweep.comparisons:
            for tie in comparison.near_ties:
                screen.live.print(
                    f"{comparison.on.speculation}, {tie.prompt}: the texts part at a near tie (the two "
                    f"likeliest tokens {tie.margin:.3f} apart with speculation off), where a batch's other "
                    "arithmetic may choose either"
                )
        failed = [c for c in sweep.comparisons if c.divergent]
        if failed:
            raise OrchestratorError(
                "with speculative decoding on, the greedy text differs from the text with it off (one "
                f"client): {'; '.join(f'{c.on.speculation}: ' + ', '.join(c.divergent) for c in failed)}; "
                "speculation should be lossless at temperature 0: report it with the records"
            )
        return ExitCode.OK


def _print_sweep(screen: Screen, sweep: ServingSweep) -> None:
    screen.out.print(serving_table(sweep))
    best = sweep.best
    screen.out.print(
        f"fastest at one client with the same greedy text: {best.speculation} (pass --spec {best.speculation})"
        if best
        else "no setting decoded faster than off at one client with the same greedy text"
    )
    figures = community_figures(model_key(sweep.off.model), sweep.off.target)
    if figures is not None:
        runs = "; ".join(
            f"{mode} {'/'.join(f'{v:.2f}' for v in values)}" for mode, values in figures.decode.items()
        )
        screen.out.print(
            f"community figures, not the publisher's and not measured here ({figures.measured}; "
            f"{figures.source}): decode t/s {runs}"
        )


def serving_table(sweep: ServingSweep) -> Table:
    off = sweep.off
    table = Table(
        title=f"{off.target} {off.profile}: {model_label(off.model)}, speculative decoding off vs "
        f"{', '.join(on.speculation for on in sweep.ons)}",
        title_justify="left",
    )
    columns = ("setting", "clients", "decode off t/s", "decode on t/s", "ratio", "aggregate ratio")
    for column in (*columns, "acceptance", "TTFT off / on ms", "identical text"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for comparison in sweep.comparisons:
        on = comparison.on
        for row in comparison.rows:
            table.add_row(
                f"{on.speculation} ({on.runtime.get('speculation')})",
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


def serving_data(sweep: ServingSweep) -> dict[str, Any]:
    figures = community_figures(model_key(sweep.off.model), sweep.off.target)
    return {
        "model": model_key(sweep.off.model),
        "file": sweep.off.model.get("file"),
        "off": sweep.off.speculation,
        "best": sweep.best.speculation if sweep.best else None,
        "settings": [_comparison_data(c) for c in sweep.comparisons],
        "community": None
        if figures is None
        else {"measured": figures.measured, "source": figures.source, "decode": dict(figures.decode)},
    }


def _comparison_data(comparison: ServingComparison) -> dict[str, Any]:
    return {
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
