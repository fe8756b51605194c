"""Serving: `up` (checks, build if needed, host steps, start, wait until ready), `down`, `status` and
`logs` of the plan's server, whichever runtime serves it (a compose service, or a native process)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.panel import Panel
from rich.table import Table

from orchestrator.app.clients import client_rows
from orchestrator.app.config import check_key_file, load_settings, make_api_key, needs_key
from orchestrator.app.options import (
    Commands,
    allow_cpu_option,
    command,
    decisions,
    force_option,
    host_step_options,
)
from orchestrator.app.outcomes import Lines, Screen
from orchestrator.app.plan_options import flags
from orchestrator.app.render import build_text, kv_table
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.deploying import recorded, serving_now
from orchestrator.app.steps.devices import check_devices, placement_verdict, remember
from orchestrator.app.steps.page_check import web_page
from orchestrator.app.steps.preflight import checked, fetched, run_host_steps
from orchestrator.app.steps.rpc_workers import check_workers, worker_answers
from orchestrator.app.steps.serving import start_or_go_back
from orchestrator.core.devices import Placement, Verdict
from orchestrator.core.exposure import made_key_path
from orchestrator.core.memory_plan import out_of_memory
from orchestrator.core.plan import Plan
from orchestrator.core.plan.layout import SERVICE
from orchestrator.core.plan.proxy import tls_files
from orchestrator.errors import ExitCode
from orchestrator.executors import certificates
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.server_state import ServerState, api_key


def register(commands: Commands) -> None:
    p = command(
        commands,
        "up",
        _up,
        plan=True,
        writes="data",
    )
    p.add_argument("--rebuild", action="store_true", help="build the image even when an identical one exists")
    force_option(p, "go on even when the model will not fit in memory")
    allow_cpu_option(p)
    p.add_argument(
        "--pull",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fetch the target's model from the hub when it is not on disk (default: ask on a terminal)",
    )
    p.add_argument(
        "--make-api-key",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="beyond loopback with no key file: make a random key in a file only you can read (default: "
        "ask on a terminal)",
    )
    host_step_options(p)
    command(
        commands,
        "down",
        lambda s, a: down(s.plan(a, companions_optional=True), s.executors()),
        plan=True,
        writes="data",
    )
    command(
        commands,
        "status",
        lambda s, a: status(s.plan(a, companions_optional=True), s.executors()),
        plan=True,
        as_json="print JSON",
    )
    p = command(
        commands,
        "logs",
        lambda s, a: Lines(
            logs(s.plan(a, companions_optional=True), s.executors(), tail=a.tail, follow=a.follow)
        ),
        plan=True,
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=200, help="lines to show (default 200)")


def _up(session: Session, args: argparse.Namespace) -> Served:
    offer_api_key(session, args)
    return up(
        session.plan(args),
        session.executors(),
        session.render.reporter(),
        rebuild=args.rebuild,
        force=args.force,
        pull=args.pull,
        decisions=decisions(args),
        allow_cpu=args.allow_cpu,
    )


@dataclass(frozen=True)
class Served:
    plan: Plan
    location: str
    build: BuildOutcome
    # The address to open in a browser, or why there is no page there.
    page: str | None = None
    no_page: str | None = None
    # Where llama.cpp put the model, as its log says.
    placement: Placement = field(default_factory=Placement)
    # The certificate clients are to trust (None: plain HTTP).
    certificate: certificates.Shown | None = None

    def show(self, screen: Screen) -> ExitCode:
        screen.out.print(build_text(self.build))
        screen.out.print(served_panel(self))
        return ExitCode.OK


def up(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    rebuild: bool,
    force: bool,
    decisions: Mapping[str, bool | None],
    pull: bool | None = False,
    allow_cpu: bool = False,
) -> Served:
    """pull: fetch the plan's hub model when it is not on disk (True), never (False), or ask (None)."""
    check_key_file(plan.api_key_file)
    certificates.check(plan.exposure, tls_files(plan.data_dir, plan.project))
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = fetched(plan, report, pull)
    plan = checked(plan, report, ("server",), force)
    if plan.speculation.fallback:
        report.note(plan.speculation.fallback)
    # Everything that can refuse the plan, before anything that runs is changed.
    runtime.check_port(plan)
    check_workers(plan, ex)
    built = build(plan, ex, report, rebuild=rebuild)
    plan = built.plan
    if built.outcome.built:
        check_workers(plan, ex)  # the new image's RPC protocol, against each worker's
    run_host_steps(plan, ex.host, report, decisions)
    verdicts: list[Verdict] = []

    def validate() -> None:
        verdict = check_devices(plan, runtime.logs(plan, tail=None), report, allow_cpu=allow_cpu)
        remember(plan, verdict.placement)
        verdicts.append(verdict)

    if start_or_go_back(plan, runtime, report, validate):
        recorded(plan, ex, "up", {"devices": verdicts[-1].placement.describe()})
    else:
        verdicts.append(placement_verdict(plan, runtime.logs(plan, tail=None)))
    page, no_page = web_page(plan, ex.host)
    return Served(
        plan,
        runtime.location(plan),
        built.outcome,
        page,
        no_page,
        verdicts[-1].placement,
        certificates.described(plan.exposure, tls_files(plan.data_dir, plan.project)),
    )


def offer_api_key(session: Session, args: argparse.Namespace) -> None:
    """Beyond loopback with no key: make one when told to, or when asked and the answer is yes (else the
    plan refuses, saying how to give one)."""
    settings = load_settings(flags(args))
    if not needs_key(settings):
        return
    reporter = session.render.reporter()
    decided = args.make_api_key
    if decided is None and reporter.ask is not None:
        decided = reporter.ask(
            f"{settings.host} is reached from other machines and no API key is set; make one in "
            f"{made_key_path(settings.data_dir)} (only you can read it)?"
        )
    if decided:
        reporter.note(f"made an API key in {make_api_key(settings)} (only you can read it)")


@dataclass(frozen=True)
class Stopped:
    was_running: bool
    runtime: str

    def show(self, screen: Screen) -> ExitCode:
        if self.runtime == "native":
            text = "stopped llama-server; models are kept" if self.was_running else "nothing to stop"
        elif self.was_running:
            text = f"stopped and removed the {SERVICE} container; model files and volumes are kept"
        else:
            text = "nothing to stop: no compose file was written yet"
        screen.out.print(text)
        return ExitCode.OK


def down(plan: Plan, ex: Executors) -> Stopped:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    return Stopped(runtime.stop(plan), runtime.kind)


@dataclass(frozen=True)
class Status:
    server: ServerState
    endpoint: str
    model: str
    target: str
    profile: str
    runtime: str
    tokens_per_second: dict[str, float]
    # Each RPC worker of the plan, and whether its port still accepts a connection.
    workers: dict[str, bool] = field(default_factory=dict)
    speculation: str = "off"
    # Why it restarted, when the kernel ended it for want of memory: the plan's figures and fixes.
    out_of_memory: str | None = None
    # What starts it again after a crash or a reboot (Docker, launchd, or nothing).
    supervisor: str = ""
    # Where llama.cpp put the model (its log since it last started), and what is wrong with that.
    placement: Placement = field(default_factory=Placement)
    device_problem: str | None = None
    # Asleep (the model freed after the idle time; the next request loads it), awake, or not known; and
    # after how long without a request it sleeps (0: never).
    sleeping: bool | None = None
    idle_s: int = 0
    # The recorded deployment that serves (orchestrator history), when one is.
    deployment: int | None = None

    @property
    def running(self) -> bool:
        return self.server.running

    def show(self, screen: Screen) -> ExitCode:
        screen.either(self.to_dict(), lambda: screen.out.print(status_table(self)))
        return ExitCode.OK if self.running else ExitCode.NOT_RUNNING

    def to_dict(self) -> dict[str, Any]:
        data = self.server.to_dict()
        del data["running"]
        return {
            **data,
            "endpoint": self.endpoint,
            "model": self.model,
            "target": self.target,
            "profile": self.profile,
            "runtime": self.runtime,
            "tokens_per_second": self.tokens_per_second,
            "workers": self.workers,
            "speculation": self.speculation,
            "out_of_memory": self.out_of_memory,
            "supervisor": self.supervisor,
            "devices": self.placement.to_dict(),
            "device_problem": self.device_problem,
            "sleeping": self.sleeping,
            "idle_seconds": self.idle_s,
            "deployment": self.deployment,
        }


def status(plan: Plan, ex: Executors) -> Status:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    server = runtime.state(plan)
    verdict = placement_verdict(plan, runtime.logs(plan, tail=None), recall=True) if server.running else None
    props = ex.host.props(plan.base_url, api_key(plan), trust=plan.trust) if server.running else {}
    return Status(
        server=server,
        endpoint=plan.endpoint,
        model=plan.model.alias,
        target=plan.target,
        profile=plan.profile,
        runtime=runtime.kind,
        tokens_per_second=ex.host.throughput(plan.base_url, api_key(plan), trust=plan.trust)
        if server.running
        else {},
        workers=worker_answers(plan, ex),
        speculation=plan.speculation.describe(),
        out_of_memory=out_of_memory(plan.memory) if server.oom_killed else None,
        supervisor=plan.supervisor,
        placement=verdict.placement if verdict else Placement(),
        device_problem=verdict.problem if verdict else None,
        sleeping=bool(props["is_sleeping"]) if "is_sleeping" in props else None,
        idle_s=plan.idle_s,
        deployment=_deployment_id(plan) if server.running else None,
    )


def _deployment_id(plan: Plan) -> int | None:
    now = serving_now(plan)
    return now.id if now is not None else None


def logs(plan: Plan, ex: Executors, *, tail: int, follow: bool) -> Iterable[str]:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    return runtime.logs(plan, tail=tail, follow=follow)


def served_panel(served: Served) -> Panel:
    plan = served.plan
    rows = [
        ("endpoint", plan.endpoint),
        ("model", plan.model.alias),
        ("target", f"{plan.target} ({plan.profile})"),
        ("devices", served.placement.describe()),
        ("compose file" if plan.runtime == "container" else "log", served.location),
        *client_rows(plan, served.certificate),
    ]
    if served.page:
        rows.insert(1, ("open in a browser", served.page))
    elif served.no_page:
        rows.append(("web page", served.no_page))
    return Panel(kv_table(rows), title="llama-server is ready", title_align="left")


def device_rows(placement: Placement) -> list[tuple[str, str]]:
    """Each device llama.cpp put part of the model on, with what it holds, and the offload it reports."""
    if not placement.found:
        return [("devices", "not read from the server's log")]
    rows = []
    for d in placement.devices:
        rows.append(
            (f"device {d.name}", (f"{d.description}: " if d.description else "") + d.held(compute=True))
        )
    if placement.offloaded:
        rows.append(
            (
                "offloaded",
                f"{placement.offloaded[0]}/{placement.offloaded[1]} layers, as llama.cpp reports it",
            )
        )
    return rows


def _awake(status: Status) -> str:
    if status.sleeping is None:
        return ""
    if status.sleeping:
        return ", asleep: the model is freed; the next request loads it again"
    idle = f"sleeps after {status.idle_s} s without a request" if status.idle_s else "never sleeps"
    return f", awake ({idle})"


def status_table(status: Status) -> Table:
    server = status.server
    rows = [
        ("state", f"{server.state}" + (f" ({server.health})" if server.health else "") + _awake(status)),
        ("endpoint", status.endpoint),
        ("model", status.model),
        ("target", f"{status.target} ({status.profile})"),
        ("runtime", status.runtime),
    ]
    if status.runtime == "container":
        rows += [("container", server.container or "-"), ("image", server.image or "-")]
    else:
        rows += [("pid", str(server.pid or "-")), ("log", server.log or "-")]
    if server.memory_bytes is not None:
        rows.append(("memory now", f"{server.memory_bytes / (1 << 20):.0f} MiB (docker stats)"))
    rows += [
        ("uptime", f"{server.uptime_s:.0f} s" if server.uptime_s is not None else "-"),
        ("restarts", str(server.restarts)),
        ("supervised by", status.supervisor),
    ]
    if status.deployment is not None:
        rows.append(("deployment", f"{status.deployment} ('orchestrator history')"))
    if status.out_of_memory:
        rows.append(("out of memory", f"[red]{status.out_of_memory}[/]"))
    if server.model_changed:
        rows.append(
            (
                "model file",
                "[yellow]changed on disk since the server loaded it; 'orchestrator up' reloads it[/]",
            )
        )
    elif server.state == "not created":
        rows.append(("note", "no server container: 'orchestrator up' starts one"))
    if server.running:
        rows += device_rows(status.placement)
    if status.device_problem:
        rows.append(("device check", f"[red]{status.device_problem}[/]"))
    rows += [(f"{k} tokens/s", f"{v}") for k, v in status.tokens_per_second.items()]
    rows.append(("speculative", status.speculation))
    rows += [
        (f"rpc worker {w}", "answers" if ok else "[red]does not answer[/]")
        for w, ok in status.workers.items()
    ]
    return kv_table(rows)
