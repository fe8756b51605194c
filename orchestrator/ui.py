"""Everything the user sees: one rich console for people, plain JSON for programs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import yaml
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.engine import BuildProgress
from orchestrator.health import Probe
from orchestrator.images import BuildOutcome
from orchestrator.memory_plan import MemoryPlan
from orchestrator.plan import ImageBuild, Plan
from orchestrator.targets import Target, cmake_flags

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def targets_table(targets: Sequence[Target]) -> Table:
    table = Table(title="Targets", title_justify="left")
    table.add_column("target", overflow="fold")
    for column in ("runs as", "profiles", "model"):
        table.add_column(column, no_wrap=True)
    for t in targets:
        runs = f"{t.family.name} image\n{t.platform}" if t.family else f"native build\n{t.platform}"
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


def plan_panels(plan: Plan) -> list[Panel]:
    header = [
        (
            "target",
            f"{plan.target}: {plan.target_title}" + (f"  (auto: {plan.detection})" if plan.detection else ""),
        ),
        ("profile", plan.profile),
        ("runtime", plan.runtime),
        ("source", f"{plan.source.name}: {plan.source.describe()}"),
        ("model", f"{plan.model.path}" + ("" if plan.model.present else "  [yellow](not present)[/]")),
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
            plan.compose, sort_keys=False, default_flow_style=None, width=max(console.width - 10, 60)
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

    def __init__(self, text: str) -> None:
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

    def __init__(self, tag: str) -> None:
        super().__init__(f"building {tag}")
        self.tag = tag

    def update(self, progress: BuildProgress) -> None:
        elapsed = time.monotonic() - self.started
        self.show(
            f"building {self.tag}  [{elapsed:4.0f} s]  stage [bold]{progress.stage}[/]: {_clip(progress.step, 70)}"
        )


def build_done(outcome: BuildOutcome) -> None:
    if outcome.built:
        console.print(f"built {outcome.tag} in {outcome.seconds:.0f} s (log: {outcome.log})")
    else:
        console.print(
            f"{outcome.tag} is up to date (same plan, Dockerfile and build script); --rebuild forces a build"
        )


class WaitStatus(_Spinner):
    """While the model loads: elapsed time, readiness, and the server's latest log line."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def update(self, probe: Probe, elapsed: float, last_line: str) -> None:
        self.show(f"{self.what}  [{elapsed:4.0f} s]  {probe.readiness}\n[dim]{_clip(last_line, 90)}[/]")


def served(plan: Plan, compose_file: Any, curl: str) -> None:
    rows = [
        ("endpoint", plan.endpoint),
        ("model", plan.model.alias),
        ("target", f"{plan.target} ({plan.profile})"),
        ("compose file", str(compose_file)),
        ("try", curl),
    ]
    console.print(Panel(_kv_table(rows), title="llama-server is ready", title_align="left"))


def status_table(status: Any) -> Table:
    rows = [
        ("state", f"{status.state}" + (f" ({status.health})" if status.health else "")),
        ("endpoint", status.endpoint),
        ("model", status.model),
        ("target", f"{status.target} ({status.profile})"),
        ("container", status.container or "-"),
        ("image", status.image or "-"),
        ("uptime", f"{status.uptime_s:.0f} s" if status.uptime_s is not None else "-"),
        ("restarts", str(status.restarts)),
    ]
    rows += [(f"{k} tokens/s", f"{v}") for k, v in status.tokens_per_second.items()]
    return _kv_table(rows)


def bench_row(name: str, row: Any, expected: int) -> None:
    console.print(
        f"  {name}: PP {row.pp:>6}  TG {row.tg:>4}  B {row.pl}  S_PP {row.speed_pp:9.2f} t/s  "
        f"S_TG {row.speed_tg:8.2f} t/s   ({expected} rows expected)",
        highlight=False,
    )


def bench_table(record: Any) -> Table:
    from orchestrator.bench import compare
    from orchestrator.reference import REFERENCES

    state = "complete" if record.complete else "[red]incomplete[/]"
    table = Table(
        title=f"{record.target} {record.profile} {record.bench}: {record.model['alias']} ({state})",
        title_justify="left",
    )
    matched = record.reference is not None and record.model.get("alias") == REFERENCES[record.reference].model
    columns = ["PP", "TG", "B", "S_PP t/s", "S_TG t/s"]
    if matched:
        columns += ["published S_PP", "ratio", "published S_TG", "ratio"]
    for column in columns:
        table.add_column(column, justify="right")
    published = {(c.pp, c.tg, c.pl): c for c in compare(record.rows, record.reference)} if matched else {}
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
def byte_progress(label: str, total: int, initial: int) -> Iterator[Callable[[int], None]]:
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


def models_table(rows: Sequence[Any]) -> Table:
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


def doctor_table(target: str, checks: Sequence[Any]) -> Table:
    table = Table(title=f"doctor: {target}", show_header=True, box=None, title_justify="left")
    for column in ("", "check", "finding", "fix"):
        table.add_column(column)
    marks = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(marks[check.status], check.name, check.detail, check.fix or "")
    return table
