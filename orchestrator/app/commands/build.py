"""Building: `build` (the plan's image or native install, pushed when asked) and `bases bootstrap` (local
base images for machines that cannot pull them)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from orchestrator.app.config import load_settings
from orchestrator.app.options import Commands, command, group
from orchestrator.app.outcomes import Screen
from orchestrator.app.render import build_text
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.core.bases import DEFAULT_MIRROR, base_specs
from orchestrator.core.cross import build_platform
from orchestrator.core.families import FAMILIES, ImageFamily
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.registry import NO_REGISTRY
from orchestrator.errors import ExitCode, UsageError
from orchestrator.executors.engine import BaseOutcome
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.probe import host_machine


def register(commands: Commands) -> None:
    p = command(
        commands,
        "build",
        _build,
        plan=True,
        writes="data",
        as_json="print the outcome as JSON",
        check=_check_push,
    )
    p.add_argument("--rebuild", action="store_true", help="build even when an identical image exists")
    p.add_argument(
        "--push", action="store_true", help="push the image to the registry setting after building"
    )

    bases = group(commands, "bases", "ACTION")
    b = command(
        bases,
        "bootstrap",
        help="debootstrap Debian base images and docker import them",
        handler=_bootstrap,
        writes="data",
    )
    b.add_argument("--family", default="vulkan", type=_family, help="image family: vulkan (default) or cuda")
    b.add_argument(
        "--platform",
        default="linux/amd64",
        choices=("linux/amd64", "linux/arm64"),
        help="architecture of the bases (linux/arm64 on an amd64 machine runs under QEMU)",
    )
    b.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror")
    b.add_argument("--rebuild", action="store_true", help="make them again even when present")


def _check_push(args: argparse.Namespace) -> None:
    if args.push and (args.registry or "").strip() == NO_REGISTRY:
        raise UsageError("--push needs a registry, not none: --registry ghcr.io/OWNER")


def _family(name: str) -> ImageFamily:
    family = FAMILIES.get(name)
    if family is None:
        raise UsageError(f"unknown image family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return family


def _build(session: Session, args: argparse.Namespace) -> BuildDone:
    plan = session.plan(args)
    ex = session.executors()
    built = build(plan, ex, session.render.reporter(), rebuild=args.rebuild)
    tag = built.outcome.tag
    registry = plan.inputs.settings.registry
    if args.push and registry == NO_REGISTRY:
        raise UsageError("--push needs a registry, not none: --registry ghcr.io/OWNER")
    pushed, digest = ex.engine.push(tag, registry) if args.push else (None, None)
    image_id = ex.engine.image_id(tag) if built.plan.runtime == "container" else None
    platform = built.plan.build.platform if isinstance(built.plan.build, ImageBuild) else None
    return BuildDone(built.outcome, pushed, digest, image_id, platform)


def _bootstrap(session: Session, args: argparse.Namespace) -> BasesMade:
    family = args.family
    # The bases a build for that platform uses on this machine (a cross-compiling family's build base
    # is this machine's own architecture).
    builder = build_platform(family, args.platform, host_machine())
    specs = base_specs(family, args.platform, args.mirror, build_platform=builder)
    engine = session.executors().engine
    engine.require()
    work_dir = load_settings({}).data_dir
    made = []
    for spec in specs:
        with session.render.status(
            f"debootstrap {spec.suite} ({spec.platform}) for {spec.tag} ({len(spec.packages)} packages)"
        ):
            made.append(engine.make_base(spec, work_dir, rebuild=args.rebuild))
    return BasesMade(tuple(made))


@dataclass(frozen=True)
class BuildDone:
    outcome: BuildOutcome
    pushed: str | None
    digest: str | None
    image_id: str | None
    platform: str | None = None

    def show(self, screen: Screen) -> ExitCode:
        screen.live.print(build_text(self.outcome))
        if self.pushed:
            screen.live.print(f"pushed {self.pushed} ({self.digest})")
        if screen.as_json:
            screen.json(
                {
                    "tag": self.outcome.tag,
                    "built": self.outcome.built,
                    "seconds": round(self.outcome.seconds, 1),
                    "pushed": self.pushed,
                    "digest": self.digest,
                    "image_id": self.image_id,
                    "webui": self.outcome.webui,
                    "pulled": self.outcome.pulled,
                    "platform": self.platform,
                }
            )
        return ExitCode.OK


@dataclass(frozen=True)
class BasesMade:
    bases: tuple[BaseOutcome, ...]

    def show(self, screen: Screen) -> ExitCode:
        for base in self.bases:
            made = f"made in {base.seconds:.0f} s" if base.made else "present, kept"
            screen.out.print(f"{base.tag}: {made}")
        screen.out.print("use them with --bases local (or bases: local in orchestrator.yaml)")
        return ExitCode.OK
