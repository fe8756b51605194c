"""`bench` (run): the profile's llama-batched-bench parameter sets, each checked for every row it must
print and recorded with what ran, compared with the publisher's tables; `bench report`: the plots and
the summary of the latest records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from orchestrator.app.outcomes import Screen
from orchestrator.app.results import (
    append_record,
    plot,
    plot_serving,
    quality_table,
    read_eval_records,
    read_records,
    read_serving_sweeps,
)
from orchestrator.app.steps.building import build, built_with
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.devices import enforce, placement_verdict
from orchestrator.app.steps.preflight import checked, run_host_steps
from orchestrator.app.steps.serving import beside_server
from orchestrator.core.bench import (
    BenchRecord,
    catalogue_name,
    compare,
    latest_per_set,
    markdown_report,
    missing_rows,
    model_key,
    parse_jsonl,
    parse_output,
    reference_for,
)
from orchestrator.core.devices import Verdict
from orchestrator.core.plan import Plan
from orchestrator.core.plan.programs import BenchPlan
from orchestrator.core.quality import EvalRecord, quality_markdown
from orchestrator.core.reference import BenchRow
from orchestrator.core.serve_bench import serving_markdown
from orchestrator.errors import ExitCode, OrchestratorError, UsageError
from orchestrator.executors.engine import CommandFailed
from orchestrator.executors.server_state import Runtime
from orchestrator.files import write_atomic
from orchestrator.models.local import file_sha256


def bench(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    results: Path,
    on_row: Callable[[str, BenchRow, int], None],
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
    allow_cpu: bool = False,
) -> list[BenchRecord]:
    """Each of the profile's parameter sets once; a set whose rows come back short is run again once.
    Every run is recorded, an incomplete one marked so, with the rows it did measure, and where llama.cpp
    put the model: a model on the CPU where the target needs its GPU stops the benchmark after that run
    (exit 6), unless allow_cpu."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    plan = prepared(plan, ex, report, ("bench",), force=force, decisions=decisions)
    common = provenance(plan, ex)
    records = []
    with beside_server(plan, runtime, report, ("bench",), force=force, stop_server=stop_server):
        for bench_plan in plan.benches:
            record, verdict = _bench_once(runtime, plan, bench_plan, common, on_row)
            if not record.complete and record.error is None:
                report.note(f"{bench_plan.name}: rows {record.missing} never arrived; running it again once")
                record, verdict = _bench_once(runtime, plan, bench_plan, common, on_row)
            append_record(results, record)
            records.append(record)
            enforce(verdict, report, allow_cpu=allow_cpu)
    return records


def prepared(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    uses: Sequence[str],
    *,
    force: bool,
    decisions: Mapping[str, bool | None],
) -> Plan:
    """The plan of a benchmark once its model is there and fits for these uses, its build is there, and
    the profile's host steps ran."""
    plan = checked(plan, report, uses, force)
    plan = build(plan, ex, report, rebuild=False).plan
    run_host_steps(plan, ex.host, report, decisions)
    return plan


def provenance(plan: Plan, ex: Executors) -> dict[str, dict[str, Any]]:
    """What a benchmark record says it ran: the model's bytes, the build, the host."""
    return {
        "model": {
            # The model catalogue's name (None for a file the catalogue does not know): what keeps runs
            # of two models apart (core.bench.model_key).
            "name": catalogue_name(plan.model),
            "alias": plan.model.alias,
            "file": plan.model.path.name,
            "size": plan.model.size_bytes,
            "sha256": file_sha256(plan.model.path, plan.data_dir / "cache" / "sha256.json"),
            "mtp": plan.model.mtp.describe() if plan.model.mtp else None,
        },
        "build": built_with(plan, ex),
        "host": ex.host.summary(plan.inputs.facts),
    }


def _bench_once(
    runtime: Runtime,
    plan: Plan,
    bench_plan: BenchPlan,
    common: Mapping[str, Any],
    on_row: Callable[[str, BenchRow, int], None],
) -> tuple[BenchRecord, Verdict]:
    expected = bench_plan.expected()
    started, lines, error = time.time(), [], None
    try:
        for line in runtime.bench(plan, bench_plan):
            lines.append(line)
            if line.startswith("{"):
                for row in parse_jsonl(line):
                    on_row(bench_plan.name, row, len(expected))
    except CommandFailed as failure:
        tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
        error = f"{failure}; last output: {tail or 'none'}"
    rows = parse_output("\n".join(lines))
    missing = missing_rows(expected, rows)
    verdict = placement_verdict(plan, lines)
    record = BenchRecord(
        run_id=uuid.uuid4().hex[:12],
        started=started,
        finished=time.time(),
        complete=not missing and error is None,
        target=plan.target,
        profile=plan.profile,
        bench=bench_plan.name,
        reference=bench_plan.reference,
        model=dict(common["model"]),
        build=dict(common["build"]),
        runtime={
            "argv": list(bench_plan.command.argv),
            "env": dict(bench_plan.command.env),
            "container": plan.container.image if plan.container else None,
            # The machines the model was spread over (none: this one alone).
            "rpc_workers": [str(w) for w in plan.rpc],
            # Where llama.cpp put the model, from this run's own log.
            "devices": verdict.placement.to_dict(),
            "device_problem": verdict.problem,
        },
        host=dict(common["host"]),
        rows=rows,
        missing=missing,
        error=error,
    )
    return record, verdict


def report(results: Path, out: Path | None) -> BenchReport:
    """The plots and the summary of the latest records in a results folder, with every quality record."""
    records = latest_per_set(read_records(results))
    serving = read_serving_sweeps(results)
    quality = read_eval_records(results)
    if not records and not serving and not quality:
        raise UsageError(
            f"no benchmark results in {results}; run 'orchestrator bench', 'orchestrator bench serve' or "
            "'orchestrator eval' first"
        )
    png = plot(records, out or results / "bench.png") if records else None
    serving_png = plot_serving(serving[-4:], results / "serving.png") if serving else None
    summary = results / "bench.md"
    text = (
        (markdown_report(records) if records else "")
        + (serving_markdown(serving) if serving else "")
        + quality_markdown(quality)
    )
    write_atomic(summary, text)
    return BenchReport(png, summary, serving_png, tuple(quality))


@dataclass(frozen=True)
class BenchDone:
    records: tuple[BenchRecord, ...]
    results: Path

    @property
    def incomplete(self) -> BenchRecord | None:
        return next((r for r in self.records if not r.complete), None)

    def show(self, screen: Screen) -> ExitCode:
        for record in self.records:
            screen.out.print(bench_table(record))
        screen.out.print(f"recorded in {self.results / 'bench.jsonl'}")
        failed = self.incomplete
        if failed is not None:
            reason = failed.error or f"rows {failed.missing} never arrived, twice"
            raise OrchestratorError(
                f"benchmark {failed.bench} is incomplete ({reason}); kept as incomplete in the results"
            )
        return ExitCode.OK


@dataclass(frozen=True)
class BenchReport:
    png: Path | None
    summary: Path
    serving_png: Path | None = None
    quality: tuple[EvalRecord, ...] = ()

    def show(self, screen: Screen) -> ExitCode:
        if self.quality:
            screen.out.print(quality_table(self.quality, "quality (orchestrator eval)"))
        for label, path in (
            ("plot", self.png),
            ("serving plot", self.serving_png),
            ("summary", self.summary),
        ):
            if path is not None:
                screen.out.print(f"{label}: {path}")
        return ExitCode.OK


def bench_row_text(name: str, row: BenchRow, expected: int) -> str:
    return (
        f"  {name}: PP {row.pp:>6}  TG {row.tg:>4}  B {row.pl}  S_PP {row.speed_pp:9.2f} t/s  "
        f"S_TG {row.speed_tg:8.2f} t/s   ({expected} rows expected)"
    )


def bench_table(record: BenchRecord) -> Table:
    state = "complete" if record.complete else "[red]incomplete[/]"
    table = Table(
        title=f"{record.target} {record.profile} {record.bench}: {model_key(record.model)} "
        f"({record.model.get('file')}, {state})",
        title_justify="left",
    )
    table_ = reference_for(record.model, record.reference)
    matched = table_ is not None
    columns = ["PP", "TG", "B", "S_PP t/s", "S_TG t/s"]
    if matched:
        columns += ["published S_PP", "ratio", "published S_TG", "ratio"]
    for column in columns:
        table.add_column(column, justify="right")
    published = (
        {(c.pp, c.tg, c.pl): c for c in compare(record.rows, table_.key)} if table_ is not None else {}
    )
    for row in record.rows:
        cells = [str(row.pp), str(row.tg), str(row.pl), f"{row.speed_pp:.2f}", f"{row.speed_tg:.2f}"]
        if matched:
            c = published.get((row.pp, row.tg, row.pl))
            cells += (
                [
                    f"{c.published_pp:.2f}",
                    f"{c.ratio_pp:.2f}" if c.ratio_pp else "-",
                    f"{c.published_tg:.2f}",
                    f"{c.ratio_tg:.2f}" if c.ratio_tg else "-",
                ]
                if c
                else ["-"] * 4
            )
        table.add_row(*cells)
    return table
