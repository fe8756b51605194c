"""Building the plan's image or native install, with its fallbacks: where the git server cannot be
reached, the same commit from the source's package-index mirror; where the bases cannot be pulled, local
ones made here (as root) unless the bases were chosen. A fallback changes the plan through a named
function of orchestrator.core.plan and says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.pulling import pulled
from orchestrator.core.bases import base_specs
from orchestrator.core.families import FAMILIES
from orchestrator.core.plan import Plan, with_local_bases, with_source
from orchestrator.core.plan.image import ImageBuild
from orchestrator.errors import OrchestratorError
from orchestrator.executors.engine import BuildFailed
from orchestrator.executors.host import Host
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.server_state import Runtime


@dataclass(frozen=True)
class Built:
    plan: Plan
    outcome: BuildOutcome


def build(plan: Plan, ex: Executors, report: Reporter, *, rebuild: bool) -> Built:
    """The plan's image or native install: present, pulled (its published image, checked against the
    plan), or built. Where the git server cannot be reached, the same commit comes from the source's
    package-index mirror; where the bases cannot be pulled, local ones are made (as root) unless the bases
    were chosen."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    if not rebuild and runtime.is_built(plan):
        return Built(plan, BuildOutcome(_built_name(plan), built=False, seconds=0.0, log=None))
    if not rebuild and (outcome := pulled(plan, ex, report)) is not None:
        return Built(plan, outcome)
    plan = mirrored(plan, ex.host, report)
    try:
        return Built(plan, _build(runtime, plan, report, rebuild))
    except BuildFailed as failure:
        image = plan.build
        if not isinstance(image, ImageBuild) or not _local_bases_would_help(plan, image, failure):
            raise
        if not ex.host.can_bootstrap():
            raise OrchestratorError(
                f"{failure}; making local bases needs root and debootstrap: "
                f"sudo orchestrator bases bootstrap --family {image.family} --platform {image.platform}"
            ) from None
    family = FAMILIES[image.family]
    report.note(f"the {family.name} base images cannot be pulled here; making local ones with debootstrap")
    for spec in base_specs(family, image.platform, build_platform=image.build_platform):
        made = ex.engine.make_base(spec, plan.data_dir)
        report.note(f"{made.tag}: " + (f"made in {made.seconds:.0f} s" if made.made else "present"))
    plan = with_local_bases(plan, "the upstream bases could not be pulled")
    return Built(plan, _build(runtime, plan, report, rebuild))


def _built_name(plan: Plan) -> str:
    return plan.build.tag if isinstance(plan.build, ImageBuild) else plan.build.prefix


def _local_bases_would_help(plan: Plan, image: ImageBuild, failure: BuildFailed) -> bool:
    """Only for the family's default bases that could not be pulled: an explicit --bases is obeyed."""
    chosen = plan.origin("bases") != "default"
    return (
        not chosen
        and failure.pull_failed
        and image.build_args["BUILD_BASE"] == FAMILIES[image.family].build_base
    )


def mirrored(plan: Plan, host: Host, report: Reporter) -> Plan:
    """The plan with its git source taken from the package-index mirror when the git server is out of reach."""
    source = plan.source
    if (
        source.kind == "git"
        and source.mirror is not None
        and source.url
        and not host.git_reachable(source.url)
    ):
        report.note(f"cannot reach {source.url}; taking the same commit from the {source.mirror.describe()}")
        return with_source(plan, host.mirror(source, plan.data_dir / "sources"))
    return plan


def _build(runtime: Runtime, plan: Plan, report: Reporter, rebuild: bool) -> BuildOutcome:
    with report.building(_built_name(plan)) as view:
        return runtime.build(plan, rebuild=rebuild, on_progress=view.update)


def built_with(plan: Plan, ex: Executors) -> dict[str, Any]:
    """What a record says its programs were built as: the image (and its id) or the native prefix, the
    source and commit, the cmake flags."""
    image = plan.build.tag if isinstance(plan.build, ImageBuild) else None
    return {
        "image": image,
        "image_id": ex.engine.image_id(image) if image else None,
        "prefix": None if isinstance(plan.build, ImageBuild) else plan.build.prefix,
        "source": plan.source.describe(),
        "commit": plan.source.commit or plan.source.revision,
        "cmake_flags": [f"-D{k}={v}" for k, v in plan.cmake_flags],
    }
