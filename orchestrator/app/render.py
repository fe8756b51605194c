"""Everything the user sees, in one place: `Renderer.show` prints each command's outcome as rich text
for people or JSON for programs (errors included), and the live views (build stage, model loading,
benchmark rows, transfers, questions) while a command runs. With --json, stdout carries only JSON and
the live views go to stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.app.outcomes import (
    BasesMade,
    BenchDone,
    BenchReport,
    BuildDone,
    CiMatrix,
    Diagnosis,
    Lines,
    ModelAdded,
    ModelListing,
    ModelPulled,
    ModelRemoved,
    ModelVerified,
    Outcome,
    PlanShown,
    ServingDone,
    TargetList,
)
from orchestrator.app.workers import WorkerStarted, WorkerStatus, WorkerStopped
from orchestrator.app.workflow import Reporter, Served, ServeFailed, ServingComparison, Status, Stopped
from orchestrator.core.bench import BenchRecord, compare
from orchestrator.core.catalogue import Target, cmake_flags
from orchestrator.core.doctor import Check
from orchestrator.core.memory_plan import MemoryPlan
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import SERVICE
from orchestrator.core.reference import REFERENCES, BenchRow
from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.executors.engine import BuildProgress
from orchestrator.executors.health import Probe
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.workers import WorkerState
from orchestrator.models.store import Listed


def targets_table(targets: Sequence[Target]) -> Table:
    table = Table(title="Targets", title_justify="left")
    table.add_column("target", overflow="fold")
    for column in ("runs as", "profiles", "model"):
        table.add_column(column, no_wrap=True)
    for t in targets:
        platform = "this machine's" if t.follows_host else t.platform
        runs = f"{t.family.name} image\n{platform}" if t.family else f"native build\n{platform}"
        table.add_row(
            f"[bold]{t.name}[/]\n[dim]{t.title}[/]", runs, "\n".join(t.profile_names), t.default_model
        )
    return table


def targets_data(targets: Sequence[Target]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "title": t.title,
            "runtime": t.runtime,
            "platform": t.platform,
            "follows_host": t.follows_host,
            "family": t.family.name if t.family else None,
            "devices": t.devices,
            "default_model": t.default_model,
            "usable_memory_gib": t.memory.usable_gib,
            "profiles": {
                p.name: {"summary": p.summary, "cmake_flags": [f"-D{k}={v}" for k, v in cmake_flags(t, p)]}
                for p in t.profiles
            },
        }
        for t in targets
    ]


def _kv_table(rows: Sequence[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def plan_panels(plan: Plan, width: int) -> list[Panel]:
    header = [
        (
            "target",
            f"{plan.target}: {plan.target_title}" + (f"  (auto: {plan.detection})" if plan.detection else ""),
        ),
        ("profile", plan.profile),
        ("runtime", plan.runtime),
        ("source", f"{plan.source.name}: {plan.source.describe()}"),
        ("model", f"{plan.model.path}" + ("" if plan.model.present else "  [yellow](not present)[/]")),
        *(
            [("MTP heads", plan.model.mtp.describe().removeprefix("MTP heads: "))]
            if plan.model.mtp is not None
            else []
        ),
        ("speculative", plan.speculation.describe()),
        ("endpoint", plan.endpoint),
        (
            "memory",
            plan.memory.verdict,
        ),
    ]
    panels = [Panel(_kv_table(header), title="Plan", title_align="left")]

    settings = Table(show_header=True, box=None)
    for column in ("setting", "value", "from"):
        settings.add_column(column)
    for name, value, origin in plan.settings:
        settings.add_row(name, value, origin)
    panels.append(Panel(settings, title="Settings", title_align="left"))

    build = plan.build
    if isinstance(build, ImageBuild):
        rows = [
            ("image", build.tag),
            ("dockerfile", f"{build.dockerfile} (stage {build.stage}, {build.platform})"),
            *([("compiled on", f"{build.build_platform} (cross-compiling)")] if build.cross else []),
        ]
        rows += [(f"--build-arg {k}", v) for k, v in build.build_args.items()]
        if build.source_dir:
            rows.append(("source dir", build.source_dir))
    else:
        rows = [("script", build.script), ("prefix", build.prefix)]
        rows += [(k, v) for k, v in build.env.items()]
    panels.append(Panel(_kv_table(rows), title="Build", title_align="left"))

    panels.append(memory_panel(plan.memory))

    commands: list[tuple[str, str]] = [(f"hook {h.name}", h.shell()) for h in plan.hooks]
    commands.append(("server", plan.server.shell()))
    commands.append(("run", plan.run.shell()))
    commands += [(f"bench {b.name}", b.command.shell()) for b in plan.benches]
    panels.append(Panel(_kv_table(commands), title="Commands", title_align="left"))

    if plan.compose is not None:
        # Flow style for lists of scalars keeps the command on a few lines.
        text = yaml.safe_dump(
            plan.compose, sort_keys=False, default_flow_style=None, width=max(width - 10, 60)
        )
        syntax = Syntax(text, "yaml", background_color="default", word_wrap=True)
        panels.append(Panel(syntax, title="Compose (written for docker compose by 'up')", title_align="left"))
    notes = [f"[yellow]warning:[/] {w}" for w in plan.warnings] + [f"note: {n}" for n in plan.notes]
    if notes:
        panels.append(Panel(Group(*notes), title="Notes", title_align="left"))
    return panels


def memory_panel(memory: MemoryPlan) -> Panel:
    if not memory.rows:
        return Panel(memory.model_source, title="Memory", title_align="left")
    table = Table(show_header=True, box=None)
    for column in ("use", "-c", "-ub", "KV type", "weights", "KV", "compute", "total", ""):
        table.add_column(column, justify="left" if column in ("use", "KV type", "") else "right")
    for row in memory.rows:
        est, work = row.fit.estimate, row.workload
        colour = {True: "green", False: "red", None: "yellow"}[row.fit.fits]
        table.add_row(
            row.use,
            str(work.ctx),
            str(work.ubatch),
            work.cache_k if work.cache_k == work.cache_v else f"{work.cache_k}/{work.cache_v}",
            f"{est.weights / 2**30:.2f}",
            f"{(est.kv + est.kv_swa) / 2**30:.2f}",
            f"{est.compute / 2**30:.2f}",
            f"{est.total / 2**30:.2f}",
            f"[{colour}]{row.fit.short()}[/]",
        )
    lines: list[Any] = [
        f"usable: {memory.usable_gib} GiB ({memory.usable_source}); sizes in GiB",
        f"model: {memory.model_source}",
        table,
    ]
    lines += [f"fix ({row.use}): {fix}" for row in memory.rows for fix in row.fit.fixes]
    return Panel(Group(*lines), title="Memory", title_align="left")


class _Spinner:
    """A rich status line used as a context manager, started when entered."""

    def __init__(self, console: Console, text: str) -> None:
        self.started = time.monotonic()
        self._status = console.status(text)

    def __enter__(self) -> Self:
        self._status.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._status.__exit__(kind, exc, tb)

    def show(self, text: str) -> None:
        self._status.update(text)


def _clip(text: str, width: int) -> str:
    return text if len(text) < width else text[: width - 3] + "..."


class BuildStatus(_Spinner):
    """The build stage that runs now, with the time so far."""

    def __init__(self, console: Console, tag: str) -> None:
        super().__init__(console, f"building {tag}")
        self.tag = tag

    def update(self, progress: BuildProgress) -> None:
        elapsed = time.monotonic() - self.started
        self.show(
            f"building {self.tag}  [{elapsed:4.0f} s]  stage [bold]{progress.stage}[/]: {_clip(progress.step, 70)}"
        )


def build_text(outcome: BuildOutcome) -> str:
    if outcome.built:
        page = f"; web UI: {outcome.webui}" if outcome.webui else ""
        return f"built {outcome.tag} in {outcome.seconds:.0f} s (log: {outcome.log}){page}"
    return f"{outcome.tag} is up to date (same plan, Dockerfile and build script); --rebuild forces a build"


class WaitStatus(_Spinner):
    """While the model loads: elapsed time, readiness, and the server's latest log line."""

    def __init__(self, console: Console, what: str) -> None:
        super().__init__(console, what)
        self.what = what

    def update(self, probe: Probe, elapsed: float, last_line: str) -> None:
        self.show(f"{self.what}  [{elapsed:4.0f} s]  {probe.readiness}\n[dim]{_clip(last_line, 90)}[/]")


def served_panel(served: Served) -> Panel:
    plan = served.plan
    rows = [
        ("endpoint", plan.endpoint),
        ("model", plan.model.alias),
        ("target", f"{plan.target} ({plan.profile})"),
        ("compose file" if plan.runtime == "container" else "log", served.location),
        ("try", curl_example(plan)),
    ]
    if served.page:
        rows.insert(1, ("open in a browser", served.page))
    elif served.no_page:
        rows.append(("web page", served.no_page))
    return Panel(_kv_table(rows), title="llama-server is ready", title_align="left")


def curl_example(plan: Plan) -> str:
    # Small enough for the 135M demo model to answer in one line (without "in one sentence" it rambles).
    question = {"role": "user", "content": "What is the capital of France? Answer in one sentence."}
    body = json.dumps({"model": plan.model.alias, "messages": [question], "max_tokens": 64, "temperature": 0})
    auth = f' -H "Authorization: Bearer $(cat {plan.api_key_file})"' if plan.api_key_file else ""
    return f"curl -s {plan.endpoint}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"


def status_table(status: Status) -> Table:
    server = status.server
    rows = [
        ("state", f"{server.state}" + (f" ({server.health})" if server.health else "")),
        ("endpoint", status.endpoint),
        ("model", status.model),
        ("target", f"{status.target} ({status.profile})"),
        ("runtime", status.runtime),
    ]
    if status.runtime == "container":
        rows += [("container", server.container or "-"), ("image", server.image or "-")]
    else:
        rows += [("pid", str(server.pid or "-")), ("log", server.log or "-")]
    rows += [
        ("uptime", f"{server.uptime_s:.0f} s" if server.uptime_s is not None else "-"),
        ("restarts", str(server.restarts)),
    ]
    if server.model_changed:
        rows.append(
            (
                "model file",
                "[yellow]changed on disk since the server loaded it; 'orchestrator up' reloads it[/]",
            )
        )
    elif server.state == "not created":
        rows.append(("note", "no server container: 'orchestrator up' starts one"))
    rows += [(f"{k} tokens/s", f"{v}") for k, v in status.tokens_per_second.items()]
    rows.append(("speculative", status.speculation))
    rows += [
        (f"rpc worker {w}", "answers" if ok else "[red]does not answer[/]")
        for w, ok in status.workers.items()
    ]
    return _kv_table(rows)


def bench_row_text(name: str, row: BenchRow, expected: int) -> str:
    return (
        f"  {name}: PP {row.pp:>6}  TG {row.tg:>4}  B {row.pl}  S_PP {row.speed_pp:9.2f} t/s  "
        f"S_TG {row.speed_tg:8.2f} t/s   ({expected} rows expected)"
    )


def _worker_line(state: WorkerState, answers: bool | None) -> str:
    if not state.running:
        return f"worker: {state.state}"
    reply = "answers" if answers else "does not answer"
    return f"worker: {state.state} on {state.listen} ({state.image}), {reply}; container {state.container}"


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


def bench_table(record: BenchRecord) -> Table:
    state = "complete" if record.complete else "[red]incomplete[/]"
    table = Table(
        title=f"{record.target} {record.profile} {record.bench}: {record.model['alias']} ({state})",
        title_justify="left",
    )
    reference = record.reference
    matched = reference is not None and record.model.get("alias") == REFERENCES[reference].model
    columns = ["PP", "TG", "B", "S_PP t/s", "S_TG t/s"]
    if matched:
        columns += ["published S_PP", "ratio", "published S_TG", "ratio"]
    for column in columns:
        table.add_column(column, justify="right")
    published = (
        {(c.pp, c.tg, c.pl): c for c in compare(record.rows, reference)} if matched and reference else {}
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


@contextmanager
def byte_progress(console: Console, label: str, total: int, initial: int) -> Iterator[Callable[[int], None]]:
    """A transfer or hashing bar: bytes done of total, speed and time left."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, completed=initial)
        yield lambda n: progress.advance(task, n)


def models_table(rows: Sequence[Listed]) -> Table:
    table = Table(show_header=True, box=None)
    for column in ("name", "size", "present", "origin", "path"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.size / 2**30:.2f} GiB",
            "yes" if row.present else "[red]missing[/]",
            row.origin,
            str(row.path),
        )
    return table


def doctor_table(target: str, checks: Sequence[Check]) -> Table:
    table = Table(title=f"doctor: {target}", show_header=True, box=None, title_justify="left")
    for column in ("", "check", "finding", "fix"):
        table.add_column(column)
    marks = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(marks[check.status], check.name, check.detail, check.fix or "")
    return table


# --- the renderer --------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class Renderer:
    """One per command: rich text on stdout, or JSON on stdout with everything live on stderr."""

    def __init__(self, *, as_json: bool, interactive: bool) -> None:
        self.as_json = as_json
        self.out = Console()
        self.live = Console(stderr=True) if as_json else self.out
        self.errors = Console(stderr=True)
        self.can_ask = interactive

    # --- while a command runs -------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.live.print(text, highlight=False)

    def ask(self, question: str) -> bool:
        return self.live.input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}

    def reporter(self) -> Reporter:
        return Reporter(
            note=self.note,
            building=lambda tag: BuildStatus(self.live, tag),
            waiting=lambda what: WaitStatus(self.live, what),
            ask=self.ask if self.can_ask else None,
            transfer=self.byte_progress,
        )

    def status(self, text: str) -> AbstractContextManager[object]:
        return self.live.status(text)

    def byte_progress(
        self, label: str, total: int, initial: int
    ) -> AbstractContextManager[Callable[[int], None]]:
        return byte_progress(self.live, label, total, initial)

    def bench_row(self, name: str, row: BenchRow, expected: int) -> None:
        self.live.print(bench_row_text(name, row, expected), highlight=False)

    # --- when it ends ---------------------------------------------------------------------------

    def _json(self, data: object) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")

    def error(self, exc: OrchestratorError) -> None:
        if isinstance(exc, ServeFailed):
            self.errors.print(exc.log_tail, highlight=False, markup=False)
        self.errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        if self.as_json:
            self._json({"error": {"exit_code": int(exc.exit_code), "message": str(exc)}})

    def interrupted(self, code: ExitCode) -> None:
        how = "terminated" if code == ExitCode.TERMINATED else "interrupted"
        message = (
            f"{how}; nothing half-done was kept where the next run would trust it: run it again to carry on"
        )
        self.errors.print(message, highlight=False, soft_wrap=True)
        if self.as_json:
            self._json({"error": {"exit_code": int(code), "message": message}})

    def show(self, outcome: Outcome) -> ExitCode:
        """Print what a command returned; the exit code it means."""
        match outcome:
            case TargetList(targets):
                self._either(targets_data(targets), lambda: self.out.print(targets_table(targets)))
            case PlanShown(plan):
                self._either(plan.to_dict(), lambda: self.out.print(*plan_panels(plan, self.out.width)))
            case BuildDone():
                self.live.print(build_text(outcome.outcome))
                if outcome.pushed:
                    self.live.print(f"pushed {outcome.pushed} ({outcome.digest})")
                if self.as_json:
                    self._json(
                        {
                            "tag": outcome.outcome.tag,
                            "built": outcome.outcome.built,
                            "seconds": round(outcome.outcome.seconds, 1),
                            "pushed": outcome.pushed,
                            "digest": outcome.digest,
                            "image_id": outcome.image_id,
                            "webui": outcome.outcome.webui,
                        }
                    )
            case BasesMade(bases):
                for base in bases:
                    made = f"made in {base.seconds:.0f} s" if base.made else "present, kept"
                    self.out.print(f"{base.tag}: {made}")
                self.out.print("use them with --bases local (or bases: local in orchestrator.yaml)")
            case Lines(lines):
                for line in lines:
                    print(line, flush=True)
            case Served():
                self.out.print(build_text(outcome.build))
                self.out.print(served_panel(outcome))
            case Stopped(was_running, runtime):
                if runtime == "native":
                    text = "stopped llama-server; models are kept" if was_running else "nothing to stop"
                elif was_running:
                    text = f"stopped and removed the {SERVICE} container; model files and volumes are kept"
                else:
                    text = "nothing to stop: no compose file was written yet"
                self.out.print(text)
            case Status():
                self._either(outcome.to_dict(), lambda: self.out.print(status_table(outcome)))
                return ExitCode.OK if outcome.running else ExitCode.NOT_RUNNING
            case BenchDone(records, results):
                for record in records:
                    self.out.print(bench_table(record))
                self.out.print(f"recorded in {results / 'bench.jsonl'}")
                failed = outcome.incomplete
                if failed is not None:
                    reason = failed.error or f"rows {failed.missing} never arrived, twice"
                    raise OrchestratorError(
                        f"benchmark {failed.bench} is incomplete ({reason}); kept as incomplete in the results"
                    )
            case BenchReport(png, summary, serving_png):
                for label, path in (("plot", png), ("serving plot", serving_png), ("summary", summary)):
                    if path is not None:
                        self.out.print(f"{label}: {path}")
            case WorkerStarted(worker, build, hello, kept):
                self.out.print(build_text(build))
                how = "kept: already running with this image and address" if kept else "started"
                self.out.print(
                    f"RPC worker {how}: rpc-server on {worker.listen} ({worker.image}), protocol "
                    f"{hello.version_text}; on the head: orchestrator up --target {worker.target} "
                    f"--rpc {worker.listen}"
                )
            case WorkerStopped(was_running):
                self.out.print(
                    "stopped and removed the worker; its tensor cache volume is kept"
                    if was_running
                    else "nothing to stop: no worker was started here"
                )
            case WorkerStatus(state, answers):
                self._either(outcome.to_dict(), lambda: self.out.print(_worker_line(state, answers)))
                return ExitCode.OK if state.running and answers is not False else ExitCode.NOT_RUNNING
            case ServingDone(comparison, results):
                self._either(serving_data(comparison), lambda: self.out.print(serving_table(comparison)))
                self.live.print(f"recorded in {results / 'bench.jsonl'}")
                cut_short = comparison.off.error or comparison.on.error
                if cut_short:
                    raise OrchestratorError(f"serving benchmark incomplete: {cut_short}; kept as recorded")
                for tie in comparison.near_ties:
                    self.live.print(
                        f"{tie.prompt}: the texts part at a near tie (the two likeliest tokens {tie.margin:.3f} "
                        "apart with speculation off), where a batch's other arithmetic may choose either"
                    )
                if comparison.divergent:
                    raise OrchestratorError(
                        "with speculative decoding on, the greedy text of "
                        f"{', '.join(comparison.divergent)} differs from the text with it off (one client); "
                        "speculation should be lossless at temperature 0: report it with the records"
                    )
            case ModelPulled(pulled):
                entry = pulled.entry
                self.out.print(
                    f"{entry.name}: {len(pulled.fetched)} fetched, {len(pulled.kept)} already there; size and "
                    f"sha256 match the hub; serve it with: orchestrator up --model {entry.path}"
                )
            case ModelAdded(entry):
                self.out.print(
                    f"registered {entry.name} ({entry.architecture}, {len(entry.files)} file(s)): {entry.path}"
                )
            case ModelListing(rows, directory):
                data = [{**row.__dict__, "path": str(row.path)} for row in rows]
                if self.as_json:
                    self._json(data)
                elif rows:
                    self.out.print(models_table(rows))
                else:
                    self.out.print(
                        f"no models in {directory}; 'orchestrator model pull' fetches the default one"
                    )
            case ModelVerified(first, verified):
                model = verified.model
                hashes = (
                    f"sha256 of {len(verified.hashed)} part(s) match the published ones"
                    if verified.hashed
                    else "no published sha256 to compare (added locally)"
                )
                self.out.print(
                    f"{first.name}: GGUF v{model.parts[0].version}, {model.arch.name}, {len(model.parts)} part(s) "
                    f"all present and consistent, {model.weights_bytes / 2**30:.2f} GiB of tensors within the "
                    f"files; {hashes}; {model.mtp.describe()}"
                )
            case ModelRemoved(name, deleted):
                self.out.print(
                    f"removed {name}"
                    + (f" and deleted {len(deleted)} file(s)" if deleted else "; files kept")
                )
            case Diagnosis(target, checks):
                self._either(
                    {"target": target, "checks": [c.to_dict() for c in checks]},
                    lambda: self.out.print(doctor_table(target, checks)),
                )
                return ExitCode.FAILED if outcome.failed else ExitCode.OK
            case CiMatrix(matrix):
                # One line: GitHub Actions reads it from $GITHUB_OUTPUT.
                print(json.dumps(matrix, separators=(",", ":")))
        return ExitCode.OK

    def _either(self, data: object, text: Callable[[], object]) -> None:
        if self.as_json:
            self._json(data)
        else:
            text()
