"""`report`: what an owner runs on the real machine and attaches when asking for help or publishing a
result. doctor, the plan, the image's labels, where llama.cpp put the model, a short llama-batched-bench
run next to the publisher's row for that machine and, with --spec, the serving benchmark with speculative
decoding off and on. One Markdown file and one JSON file, with API keys, tokens, the user's name and home
folder taken out."""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.app.commands.bench.batched import bench
from orchestrator.app.commands.bench.serve_bench import bench_serve, serving_data
from orchestrator.app.outcomes import Screen
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.probing import doctor_facts
from orchestrator.core.bench import BenchRecord, compare, model_key, reference_for
from orchestrator.core.devices import Placement, mib
from orchestrator.core.doctor import diagnose
from orchestrator.core.plan import Plan
from orchestrator.core.redact import redact
from orchestrator.errors import ExitCode
from orchestrator.files import write_atomic

# The short run: an empty prompt and a 512-token one, 128 tokens generated, one sequence; (0, 128, 1) is
# in every table the publisher printed.
SHORT_NPP, SHORT_NTG, SHORT_NPL = (0, 512), (128,), (1,)
# Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "GITHUB_TOKEN")


@dataclass(frozen=True)
class OwnerReport:
    markdown: Path
    data: Path
    devices: str
    device_problem: str | None

    def show(self, screen: Screen) -> ExitCode:
        screen.either(
            {"markdown": str(self.markdown), "json": str(self.data), "devices": self.devices},
            lambda: screen.out.print(
                f"report written: {self.markdown} and {self.data}\ndevices: {self.devices}"
                + (f"\n[red]device check: {self.device_problem}[/]" if self.device_problem else "")
                + "\nread them before sharing: keys, tokens, the user's name and home folder are taken out"
            ),
        )
        return ExitCode.OK


def owner_report(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    out: Path,
    spec: bool,
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
) -> OwnerReport:
    checks = diagnose(plan, doctor_facts(plan, ex))
    image = plan.container.image if plan.container else None
    labels = (ex.engine.image_labels(image) or {}) if image else {}
    results = out / "results"
    # The model on the CPU is what a report may have to show: measured and said, not refused.
    records = bench(
        replace(plan, benches=plan.benches[:1]),
        ex,
        report,
        results=results,
        on_row=lambda *_: None,
        decisions=decisions,
        force=force,
        stop_server=stop_server,
        allow_cpu=True,
    )
    serving = None
    if spec:
        serving = serving_data(
            bench_serve(
                plan,
                ex,
                report,
                results=results,
                clients=(1,),
                decisions=decisions,
                force=force,
                stop_server=stop_server,
                allow_cpu=True,
                # A report measures the plan's own setting against off, not every draft count.
                sweep=(plan.speculation.requested,),
            )
        )
    record = records[0] if records else None
    placement = Placement.from_dict(record.runtime.get("devices", {})) if record else Placement()
    problem = record.runtime.get("device_problem") if record else None
    data = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": plan.target,
        "profile": plan.profile,
        "doctor": [c.to_dict() for c in checks],
        "plan": plan.to_dict(),
        "image_labels": labels,
        "devices": placement.to_dict(),
        "device_problem": problem,
        "bench": _bench_data(record),
        "serving": serving,
    }
    secrets = _secrets(plan)
    home, user = str(Path.home()), _user()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    markdown = out / f"report-{plan.target}-{stamp}.md"
    as_json = out / f"report-{plan.target}-{stamp}.json"
    write_atomic(as_json, redact(json.dumps(data, indent=2, default=str), secrets, home, user) + "\n")
    write_atomic(markdown, redact(_markdown(data, placement, checks), secrets, home, user))
    return OwnerReport(markdown, as_json, placement.describe(), problem)


def _bench_data(record: BenchRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    rows = [row.__dict__ for row in record.rows]
    # Only a table of the model that ran: a Step-3.7 run is never set against the Step-3.5 tables.
    table = reference_for(record.model, record.reference)
    against = compare(record.rows, table.key) if table is not None else []
    return {
        "set": record.bench,
        "complete": record.complete,
        "error": record.error,
        "rows": rows,
        "model": model_key(record.model),
        "file": record.model.get("file"),
        "reference": table.key if table is not None else None,
        "published": [{**c.__dict__, "ratio_pp": c.ratio_pp, "ratio_tg": c.ratio_tg} for c in against],
    }


def _secrets(plan: Plan) -> list[str]:
    found = [os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)]
    if plan.api_key_file and plan.api_key_file.is_file():
        found.append(plan.api_key_file.read_text().strip())
    return found


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _markdown(data: Mapping[str, Any], placement: Placement, checks: Sequence[Any]) -> str:
    lines = [
        f"# step-flash-orchestrator report: {data['target']} ({data['profile']})",
        "",
        f"Made {data['made']}.",
        "",
        "## Devices (from llama.cpp's own log)",
        "",
        "| device | description | model MiB | KV MiB | compute MiB | layers |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {d.name} | {d.description or '-'} | {mib(d.model_mib)} | {mib(d.kv_mib)} | {mib(d.compute_mib)} | "
        f"{'-' if d.layers is None else d.layers} |"
        for d in placement.devices
    ]
    if placement.offloaded:
        lines.append(
            f"\nllama.cpp reports {placement.offloaded[0]}/{placement.offloaded[1]} layers offloaded."
        )
    if data["device_problem"]:
        lines.append(f"\n**Device check failed:** {data['device_problem']}")
    lines += ["", "## Benchmark (llama-batched-bench)", ""]
    bench_data = data["bench"]
    if bench_data:
        lines += ["| pp | tg | pl | S_PP t/s | S_TG t/s |", "|---:|---:|---:|---:|---:|"]
        lines += [
            f"| {r['pp']} | {r['tg']} | {r['pl']} | {r['speed_pp']:.2f} | {r['speed_tg']:.2f} |"
            for r in bench_data["rows"]
        ]
        if bench_data["published"]:
            lines += [
                "",
                f"Against the publisher's table {bench_data['reference']}:",
                "",
                "| pp | tg | pl | S_PP here / published | S_TG here / published |",
                "|---:|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {c['pp']} | {c['tg']} | {c['pl']} | {c['speed_pp']:.2f} / {c['published_pp']:.2f} | "
                f"{c['speed_tg']:.2f} / {c['published_tg']:.2f} |"
                for c in bench_data["published"]
            ]
        if bench_data["error"]:
            lines.append(f"\nThe run failed: {bench_data['error']}")
    if data["serving"]:
        lines += ["", "## Serving benchmark (speculative decoding off and on)", "", "```json"]
        lines += [json.dumps(data["serving"], indent=2, default=str), "```"]
    lines += ["", "## doctor", "", "| check | status | detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.status} | {c.detail} |" for c in checks]
    lines += ["", "## Image labels", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(data["image_labels"].items())] or ["- (no image)"]
    lines += ["", "## Plan", "", "```json", json.dumps(data["plan"], indent=2, default=str), "```", ""]
    return "\n".join(lines)
