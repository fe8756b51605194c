"""The steps of `build` and `up` in order, with their fallbacks. The CLI gives it callbacks to show
progress; the decisions live here, the side effects in engine, images, bases, hooks and serve."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from orchestrator import hooks, serve
from orchestrator.bases import base_specs, bootstrap_base
from orchestrator.engine import BuildFailed, BuildProgress, Engine
from orchestrator.errors import NotAvailableYet, OrchestratorError
from orchestrator.health import Probe, wait_until_ready
from orchestrator.images import BuildOutcome, build_image, is_up_to_date
from orchestrator.models import write_demo_model
from orchestrator.plan import SERVICE, ImageBuild, Plan
from orchestrator.resolve import plan_from_flags
from orchestrator.sources import Source, from_mirror, git_reachable
from orchestrator.targets import FAMILIES


class BuildView(Protocol):
    def update(self, progress: BuildProgress) -> None: ...


class WaitView(Protocol):
    def update(self, probe: Probe, elapsed: float, last_line: str) -> None: ...


@dataclass(frozen=True)
class Reporter:
    note: Callable[[str], None]
    building: Callable[[str], AbstractContextManager[BuildView]]
    waiting: Callable[[str], AbstractContextManager[WaitView]]
    ask: Callable[[str], bool] | None


def container_plan(flags: Mapping[str, object], source: Source | None = None) -> Plan:
    plan = plan_from_flags(flags, source=source)
    if not isinstance(plan.build, ImageBuild):
        raise NotAvailableYet(
            f"the {plan.target} target builds and runs natively; that comes with the macOS work"
        )
    return plan


def _can_bootstrap() -> bool:
    return os.geteuid() == 0 and shutil.which("debootstrap") is not None


def build(
    engine: Engine, flags: Mapping[str, object], *, rebuild: bool, report: Reporter
) -> tuple[Plan, BuildOutcome]:
    """Build the plan's image. Where the git server cannot be reached, the same commit comes from the
    source's package-index mirror; where the bases cannot be pulled, local ones are made (as root)."""
    plan = container_plan(flags)
    assert isinstance(plan.build, ImageBuild)
    engine.require(buildx=True)
    engine.require_platform(plan.build.platform)
    if not rebuild and is_up_to_date(engine, plan.build):
        return plan, BuildOutcome(plan.build.tag, built=False, seconds=0.0, log=None)
    source = plan.source
    if source.kind == "git" and source.mirror is not None and source.url and not git_reachable(source.url):
        report.note(f"cannot reach {source.url}; taking the same commit from the {source.mirror.describe()}")
        source = from_mirror(source, plan.data_dir / "sources")
        plan = container_plan(flags, source)
    image = plan.build
    assert isinstance(image, ImageBuild)
    family = FAMILIES[image.family]
    try:
        return plan, _build(engine, plan, rebuild, report)
    except BuildFailed as failure:
        # Only when the bases were not chosen: an explicit --bases upstream is obeyed, and fails.
        chosen = plan.origin("bases") != "default"
        if chosen or not (failure.pull_failed and image.build_args["BUILD_BASE"] == family.build_base):
            raise
        if not _can_bootstrap():
            raise OrchestratorError(
                f"{failure}; making local bases needs root and debootstrap: "
                f"sudo orchestrator bases bootstrap --family {family.name}"
            ) from None
    report.note(f"the {family.name} base images cannot be pulled here; making local ones with debootstrap")
    for spec in base_specs(family):
        made = bootstrap_base(engine, spec, plan.data_dir)
        report.note(f"{made.tag}: " + (f"made in {made.seconds:.0f} s" if made.made else "present"))
    plan = container_plan({**flags, "bases": "local"}, source)
    return plan, _build(engine, plan, rebuild, report)


def _build(engine: Engine, plan: Plan, rebuild: bool, report: Reporter) -> BuildOutcome:
    assert isinstance(plan.build, ImageBuild)
    with report.building(plan.build.tag) as view:
        return build_image(
            engine, plan.build, work_dir=plan.data_dir, rebuild=rebuild, on_progress=view.update
        )


@dataclass(frozen=True)
class Served:
    plan: Plan
    compose_file: str
    build: BuildOutcome


def up(
    engine: Engine,
    flags: Mapping[str, object],
    *,
    rebuild: bool,
    force: bool,
    decisions: Mapping[str, bool | None],
    report: Reporter,
) -> Served:
    plan = container_plan(flags)
    engine.require(buildx=True, compose=True)
    if write_demo_model(plan.model):
        report.note(f"wrote the demo model to {plan.model.path}")
        plan = container_plan(flags)
    serve.check_model(plan)
    serve.check_memory(plan, force)
    compose = serve.compose_for(plan)
    running = compose.service(SERVICE)
    serve.check_port_free(plan, running)
    plan, outcome = build(engine, flags, rebuild=rebuild, report=report)
    for result in hooks.run_host_steps(plan.hooks, decisions=decisions, ask=report.ask):
        report.note(result.message)
    serve.install_api_key(plan)
    path = serve.write_compose(plan)
    restarts = running.restarts if running else 0
    compose.up()
    with report.waiting("loading the model") as view:
        last = wait_until_ready(
            lambda: serve.probe(plan, compose, restarts),
            timeout_s=plan.wait_timeout_s,
            on_tick=lambda p, t: view.update(p, t, serve.last_log_line(compose)),
        )
    if last.readiness != "ready":
        tail = "\n".join(serve.log_tail(compose))
        reason = (
            last.detail
            if last.readiness == "failed"
            else f"not ready after {plan.wait_timeout_s} s ({last.detail})"
        )
        raise ServeFailed(f"llama-server did not become ready: {reason}; its log ends above", tail)
    return Served(plan, str(path), outcome)


class ServeFailed(OrchestratorError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail
