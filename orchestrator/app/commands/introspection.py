"""What the tool knows and would do, without doing it: `targets` (the catalogue's machines), `plan` (the
whole plan of a command, with where each setting came from) and `ci-matrix` (the image builds CI runs)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from orchestrator.app.options import Commands, command
from orchestrator.app.outcomes import Lines, Screen
from orchestrator.app.render import kv_table
from orchestrator.app.session import Session
from orchestrator.core.catalogue import CATALOGUE, Target, cmake_flags
from orchestrator.core.ci import ci_matrix
from orchestrator.core.memory_plan import MemoryPlan
from orchestrator.core.models import ModelSpec, serves_line
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.published import ImageLock, locked, parse_lock
from orchestrator.core.registry import NO_REGISTRY, parse_registry
from orchestrator.errors import ConfigError, ExitCode, UsageError
from orchestrator.files import write_atomic


def register(commands: Commands) -> None:
    command(commands, "targets", _targets, as_json="print JSON")
    command(
        commands,
        "plan",
        _plan,
        plan=True,
        as_json="print the plan as JSON",
    )
    command(commands, "ci-matrix", _ci_matrix)
    p = command(commands, "ci-lock", _ci_lock)
    p.add_argument("builds", nargs="+", help="the JSON of each 'orchestrator build --push --json'")
    p.add_argument("--lock", required=True, help="the image lock to update (orchestrator/images.lock.json)")
    p.add_argument(
        "--registry",
        type=_registry,
        help="the namespace the images were pushed to (ghcr.io/OWNER): the default registry of the "
        "package built with this lock",
    )


def _registry(text: str) -> str:
    try:
        value = parse_registry(text)
    except ValueError as exc:
        raise UsageError(f"--registry {text}: {exc}") from None
    if value == NO_REGISTRY:
        raise UsageError(
            f"--registry {text}: give the namespace the images were pushed to, e.g. ghcr.io/OWNER"
        )
    return value


def _targets(session: Session, args: argparse.Namespace) -> TargetList:
    return TargetList(tuple(CATALOGUE.values()))


def _plan(session: Session, args: argparse.Namespace) -> PlanShown:
    return PlanShown(session.plan(args))


def _ci_matrix(session: Session, args: argparse.Namespace) -> CiMatrix:
    return CiMatrix(ci_matrix())


def _ci_lock(session: Session, args: argparse.Namespace) -> Lines:
    """The image lock with what CI pushed (reference, platform, digest of each image)."""
    path = Path(args.lock)
    lock = parse_lock(path.read_text(), str(path)) if path.is_file() else ImageLock()
    for name in args.builds:
        try:
            record = json.loads(Path(name).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the build record {name} ({exc}); give build --json's output"
            ) from None
        lock = locked(lock, [record], name)
    if args.registry:
        lock = replace(lock, registry=args.registry)
    write_atomic(path, lock.to_json())
    return Lines([f"{path}: {sum(len(p) for p in lock.digests.values())} image digests"])


@dataclass(frozen=True)
class TargetList:
    targets: tuple[Target, ...]

    def show(self, screen: Screen) -> ExitCode:
        screen.either(targets_data(self.targets), lambda: screen.out.print(targets_table(self.targets)))
        return ExitCode.OK


@dataclass(frozen=True)
class PlanShown:
    plan: Plan

    def show(self, screen: Screen) -> ExitCode:
        screen.either(
            self.plan.to_dict(), lambda: screen.out.print(*plan_panels(self.plan, screen.out.width))
        )
        return ExitCode.OK


@dataclass(frozen=True)
class CiMatrix:
    matrix: Mapping[str, Any]

    def show(self, screen: Screen) -> ExitCode:
        # One line: GitHub Actions reads it from $GITHUB_OUTPUT.
        print(json.dumps(self.matrix, separators=(",", ":")))
        return ExitCode.OK


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


def reach_text(plan: Plan) -> str:
    """Who may reach the server: TLS and whose certificate, the names it answers to, the web origins."""
    reach = plan.exposure
    tls = {"local-ca": "HTTPS, certificate from the local authority", "owner": "HTTPS, your certificate"}.get(
        reach.certificate or "", "plain HTTP"
    )
    origins = list(reach.origins)
    return (
        f"{tls}; answers to {', '.join(reach.names)} (any other Host refused); "
        f"web pages allowed: {', '.join(origins) or 'none'}"
    )


def plan_panels(plan: Plan, width: int) -> list[Panel]:
    header = [
        (
            "target",
            f"{plan.target}: {plan.target_title}" + (f"  (auto: {plan.detection})" if plan.detection else ""),
        ),
        ("profile", plan.profile),
        ("runtime", plan.runtime),
        ("source", f"{plan.source.name}: {plan.source.describe()}"),
        ("serves", serves_line(plan.model.alias, plan.inputs.target.default_model)),
        ("model", f"{plan.model.path}" + ("" if plan.model.present else "  [yellow](not present)[/]")),
        *([("MTP heads", _mtp_heads(plan.model))] if plan.model.mtp is not None else []),
        ("speculative", plan.speculation.describe()),
        ("images", plan.model.images()),
        ("reasoning", plan.reasoning.describe()),
        ("endpoint", plan.endpoint),
        ("reached", reach_text(plan)),
        (
            "memory",
            plan.memory.verdict,
        ),
    ]
    panels = [Panel(kv_table(header), title="Plan", title_align="left")]

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
    panels.append(Panel(kv_table(rows), title="Build", title_align="left"))

    panels.append(memory_panel(plan.memory))

    commands: list[tuple[str, str]] = [(f"hook {h.name}", h.shell()) for h in plan.hooks]
    commands.append(("server", plan.server.shell()))
    commands.append(("run", plan.run.shell()))
    commands += [(f"bench {b.name}", b.command.shell()) for b in plan.benches]
    panels.append(Panel(kv_table(commands), title="Commands", title_align="left"))

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


def _mtp_heads(model: ModelSpec) -> str:
    """The model's MTP heads, and the file that supplies them where that is not the model's own."""
    heads = model.mtp
    if heads is None:
        return "unknown until the file is read"
    if model.sidecar is not None and heads.layout == "trunk-only":
        theirs, ours = model.sidecar.family, model.family
        if theirs is not None and ours is not None and theirs != ours:
            return (
                f"{heads.declared}, not in the file; {model.sidecar.path.name} beside it is "
                f"Step-{theirs}-Flash's, not this model's"
            )
        when = "" if model.present else " (pulled with the model)"
        return f"{heads.declared}, in {model.sidecar.path.name}{when}"
    return heads.describe().removeprefix("MTP heads: ")
