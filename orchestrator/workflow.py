"""The steps of `build` and `up` in order, with their fallbacks. The CLI gives it callbacks to show
progress; the decisions live here, the side effects in engine, images, bases, hooks and serve."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator import hooks, native, serve
from orchestrator.bases import base_specs, bootstrap_base
from orchestrator.bench import (
    BenchRecord,
    append_record,
    expected_rows,
    missing_rows,
    parse_jsonl,
    parse_output,
)
from orchestrator.engine import BuildFailed, BuildProgress, CommandFailed, Engine
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.health import Probe, wait_until_ready
from orchestrator.images import BuildOutcome, build_image, is_up_to_date
from orchestrator.models import file_sha256, write_demo_model
from orchestrator.plan import SERVICE, BenchOverride, BenchPlan, ImageBuild, NativeBuild, Plan
from orchestrator.probe import host_summary
from orchestrator.reference import BenchRow
from orchestrator.resolve import plan_from_flags, resolve
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


def container_plan(flags: Mapping[str, object], source: Source | None = None, **extras: Any) -> Plan:
    """extras: bench_override, prompt (see resolve.plan_from_flags)."""
    plan = plan_from_flags(flags, source=source, **extras)
    if not isinstance(plan.build, ImageBuild):
        raise UsageError(
            f"the {plan.target} plan builds and runs on the host (native); this command is for containers"
        )
    return plan


def _can_bootstrap() -> bool:
    return os.geteuid() == 0 and shutil.which("debootstrap") is not None


def build(
    engine: Engine, flags: Mapping[str, object], *, rebuild: bool, report: Reporter, **extras: Any
) -> tuple[Plan, BuildOutcome]:
    """Build the plan's image. Where the git server cannot be reached, the same commit comes from the
    source's package-index mirror; where the bases cannot be pulled, local ones are made (as root)."""
    if isinstance(plan_from_flags(flags, **extras).build, NativeBuild):
        return _native_build(flags, rebuild=rebuild, report=report, **extras)
    plan = container_plan(flags, **extras)
    assert isinstance(plan.build, ImageBuild)
    engine.require(buildx=True)
    engine.require_platform(plan.build.platform)
    if not rebuild and is_up_to_date(engine, plan.build):
        return plan, BuildOutcome(plan.build.tag, built=False, seconds=0.0, log=None)
    plan = _mirrored(plan, flags, report, **extras)
    source = plan.source
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
    plan = container_plan({**flags, "bases": "local"}, source, **extras)
    return plan, _build(engine, plan, rebuild, report)


def _mirrored(plan: Plan, flags: Mapping[str, object], report: Reporter, **extras: Any) -> Plan:
    source = plan.source
    if source.kind == "git" and source.mirror is not None and source.url and not git_reachable(source.url):
        report.note(f"cannot reach {source.url}; taking the same commit from the {source.mirror.describe()}")
        return plan_from_flags(flags, source=from_mirror(source, plan.data_dir / "sources"), **extras)
    return plan


def _native_build(
    flags: Mapping[str, object], *, rebuild: bool, report: Reporter, **extras: Any
) -> tuple[Plan, BuildOutcome]:
    """Build on the host through scripts/macos-native/build.sh (skipped when the prefix is complete)."""
    plan = plan_from_flags(flags, **extras)
    if native.is_built(plan) and not rebuild:
        assert isinstance(plan.build, NativeBuild)
        return plan, BuildOutcome(plan.build.prefix, built=False, seconds=0.0, log=None)
    plan = _mirrored(plan, flags, report, **extras)
    assert isinstance(plan.build, NativeBuild)
    with report.building(plan.build.prefix):
        return plan, native.build(plan, rebuild)


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
    if isinstance(plan_from_flags(flags).build, NativeBuild):
        return _native_up(flags, rebuild=rebuild, force=force, decisions=decisions, report=report)
    engine.require(buildx=True, compose=True)
    plan = _checked_plan(flags, report, ("server",), force)
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
    _await_ready(
        plan,
        report,
        lambda: serve.probe(plan, compose, restarts),
        lambda: serve.last_log_line(compose),
        lambda: serve.log_tail(compose),
    )
    return Served(plan, str(path), outcome)


def _await_ready(
    plan: Plan,
    report: Reporter,
    probe: Callable[[], Probe],
    last_line: Callable[[], str],
    log_tail: Callable[[], list[str]],
) -> None:
    """Wait for /health with the server's latest log line on screen; a server that fails or never gets
    ready is an error carrying the end of its log."""
    with report.waiting("loading the model") as view:
        last = wait_until_ready(
            probe, timeout_s=plan.wait_timeout_s, on_tick=lambda p, t: view.update(p, t, last_line())
        )
    if last.readiness != "ready":
        reason = (
            last.detail
            if last.readiness == "failed"
            else f"not ready after {plan.wait_timeout_s} s ({last.detail})"
        )
        raise ServeFailed(
            f"llama-server did not become ready: {reason}; its log ends above", "\n".join(log_tail())
        )


def _native_up(
    flags: Mapping[str, object],
    *,
    rebuild: bool,
    force: bool,
    decisions: Mapping[str, bool | None],
    report: Reporter,
) -> Served:
    plan = _checked_plan(flags, report, ("server",), force)
    current = native.state(plan)
    if not (current.running and current.argv == plan.server.argv):
        serve.check_address_free(*serve.endpoint_address(plan))
    plan, outcome = _native_build(flags, rebuild=rebuild, report=report)
    for result in hooks.run_host_steps(plan.hooks, decisions=decisions, ask=report.ask):
        report.note(result.message)
    if not native.start(plan):
        report.note(f"llama-server is already running with this plan (pid {current.pid}); kept")
    _await_ready(
        plan,
        report,
        lambda: native.probe(plan),
        lambda: (native.log_tail(plan, 1) or [""])[0],
        lambda: native.log_tail(plan, 25),
    )
    return Served(plan, str(native.state(plan).log), outcome)


class ServeFailed(OrchestratorError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def _prepare(
    engine: Engine,
    flags: Mapping[str, object],
    report: Reporter,
    memory_uses: Sequence[str] = (),
    force: bool = False,
    **extras: Any,
) -> Plan:
    """What running anything needs: the model checked and fitting in memory, then the build."""
    _checked_plan(flags, report, memory_uses, force, **extras)
    plan, _outcome = build(engine, flags, rebuild=False, report=report, **extras)
    return plan


def _checked_plan(
    flags: Mapping[str, object], report: Reporter, memory_uses: Sequence[str], force: bool, **extras: Any
) -> Plan:
    """The plan once its model is there (the demo one written when wanted), sound, and fits in memory."""
    plan = plan_from_flags(flags, **extras)
    if write_demo_model(plan.model):
        report.note(f"wrote the demo model to {plan.model.path}")
        plan = plan_from_flags(flags, **extras)
    serve.check_model(plan)
    serve.check_memory(plan, force, memory_uses)
    return plan


def _stream(
    engine: Engine, plan: Plan, argv: Sequence[str], env: Mapping[str, str], script: str
) -> Iterable[str]:
    """A one-off llama.cpp program: in a fresh container, or on the host through the native scripts."""
    if isinstance(plan.build, NativeBuild):
        return native.stream(plan, script, argv, dict(env))
    assert plan.container is not None
    return engine.stream(plan.container, argv, env)


def run_prompt(
    engine: Engine, flags: Mapping[str, object], prompt: str, report: Reporter, force: bool = False
) -> Iterable[str]:
    """The publisher's basic inference (llama-cli), streamed line by line."""
    plan = _prepare(engine, flags, report, ("server",), force, prompt=prompt)
    yield from _stream(engine, plan, plan.run.argv, plan.run.env, "run.sh")


def bench(
    engine: Engine,
    flags: Mapping[str, object],
    *,
    override: BenchOverride | None,
    results: Path,
    report: Reporter,
    on_row: Callable[[str, BenchRow, int], None],
    decisions: Mapping[str, bool | None],
    force: bool = False,
) -> list[BenchRecord]:
    """Each of the profile's parameter sets once; a set whose rows come back short is run again once.
    Every run is recorded, an incomplete one marked so, with the rows it did measure."""
    plan = _prepare(engine, flags, report, ("bench",), force, bench_override=override)
    for result in hooks.run_host_steps(plan.hooks, decisions=decisions, ask=report.ask):
        report.note(result.message)
    facts = resolve(flags).facts
    common = {
        "model": {
            "alias": plan.model.alias,
            "file": plan.model.path.name,
            "size": plan.model.size_bytes,
            "sha256": file_sha256(plan.model.path, plan.data_dir / "cache" / "sha256.json"),
        },
        "build": {
            "image": plan.build.tag if isinstance(plan.build, ImageBuild) else None,
            "image_id": engine.image_id(plan.build.tag) if isinstance(plan.build, ImageBuild) else None,
            "prefix": plan.build.prefix if isinstance(plan.build, NativeBuild) else None,
            "source": plan.source.describe(),
            "commit": plan.source.commit or plan.source.revision,
            "cmake_flags": [f"-D{k}={v}" for k, v in plan.cmake_flags],
        },
        "host": host_summary(facts),
    }
    records = []
    for bench_plan in plan.benches:
        record = _bench_once(engine, plan, bench_plan, common, on_row)
        if not record.complete and record.error is None:
            report.note(f"{bench_plan.name}: rows {record.missing} never arrived; running it again once")
            record = _bench_once(engine, plan, bench_plan, common, on_row)
        append_record(results, record)
        records.append(record)
    return records


def _bench_once(
    engine: Engine,
    plan: Plan,
    bench_plan: BenchPlan,
    common: Mapping[str, Any],
    on_row: Callable[[str, BenchRow, int], None],
) -> BenchRecord:
    argv = bench_plan.command.argv
    ctx, npp, ntg, npl = (argv[argv.index(flag) + 1] for flag in ("-c", "-npp", "-ntg", "-npl"))
    expected = expected_rows(int(ctx), *(tuple(int(v) for v in x.split(",")) for x in (npp, ntg, npl)))
    started, lines, error = time.time(), [], None
    try:
        for line in _stream(engine, plan, argv, bench_plan.command.env, "bench.sh"):
            lines.append(line)
            if line.startswith("{"):
                for row in parse_jsonl(line):
                    on_row(bench_plan.name, row, len(expected))
    except CommandFailed as failure:
        tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
        error = f"{failure}; last output: {tail or 'none'}"
    rows = parse_output("\n".join(lines))
    missing = missing_rows(expected, rows)
    return BenchRecord(
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
            "argv": list(argv),
            "env": dict(bench_plan.command.env),
            "container": plan.container.image if plan.container else None,
        },
        host=dict(common["host"]),
        rows=rows,
        missing=missing,
        error=error,
    )


def doctor_facts(engine: Engine, plan: Plan) -> Any:
    """Everything `doctor` judges, probed once: the host, Docker (for container targets), the disk."""
    from orchestrator.doctor import DoctorFacts
    from orchestrator.probe import probe

    folder = plan.model.path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return DoctorFacts(
        host=probe(),
        engine=engine.versions() if plan.runtime == "container" else None,
        disk_free_bytes=shutil.disk_usage(folder).free if folder.exists() else None,
        disk_path=str(folder),
    )
