"""The plan's published image instead of a compile: pulled only by the digest a release of ours wrote into
the lock it ships (by tag only with --trust-tag, said each time), held against the plan by its labels, and
tagged as the plan's image; or why not, in one line, and the build goes on (with --no-build: it stops)."""

from __future__ import annotations

import time

from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.published import label_difference
from orchestrator.core.registry import repository_of
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors.engine import EngineError
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.published import read_lock, remember_pulled


class NotPulled(OrchestratorError):
    """--no-build, and the published image could not be had."""


def pulled(plan: Plan, ex: Executors, report: Reporter) -> BuildOutcome | None:
    """The plan's image pulled and checked, under the plan's tag; None: build it here (said why)."""
    image = plan.build
    if not isinstance(image, ImageBuild) or image.published is None:
        return None
    settings = plan.inputs.settings
    never = settings.build == "never"
    reference = image.published

    def instead(why: str) -> BuildOutcome | None:
        if never:
            raise NotPulled(f"{why}; --no-build: nothing is compiled (drop --no-build to build it here)")
        report.note(f"{why}; building it here")
        return None

    problem = ex.host.registry_problem(settings.registry)
    if problem:
        return instead(f"the registry {settings.registry} does not answer ({problem})")
    pinned = read_lock(settings.image_lock).digest(reference, image.platform)
    trust = settings.trust_tag
    if not pinned and not trust:
        # Labels are free text anyone who can push a tag writes: only a digest a release of ours wrote
        # into the lock it ships says the image is ours.
        return instead(
            f"the image lock holds no digest for {reference} ({image.platform}), so no release of ours "
            "published it; not pulled (--trust-tag pulls the tag as it is)"
        )
    if not pinned:
        report.note(f"--trust-tag: pulling {reference} by its tag; no release of ours recorded its digest")
    started = time.monotonic()
    source = f"{repository_of(reference)}@{pinned}" if pinned else reference
    try:
        _pull(ex, report, source)
    except EngineError as failure:
        if not pinned:
            return instead(f"cannot pull {reference} ({failure})")
        source = _by_tag(ex, report, reference, pinned, trust=trust, failure=failure)
    platform = ex.engine.image_platform(source)
    labels = ex.engine.image_labels(source) or {}
    if platform != image.platform:
        raise UsageError(
            f"the published {reference} is an image for {platform}, not {image.platform} as the plan is: "
            "pass --platform for the machine it is for, or --build to compile it here"
        )
    differs = label_difference(image, labels, platform)
    if differs:
        return instead(f"the published {reference} is not this plan's image: {differs}")
    digest = ex.engine.repo_digest(source)
    ex.engine.tag(source, image.tag)
    remember_pulled(plan.data_dir, image.tag, ex.engine.image_id(image.tag) or "", reference, digest)
    seconds = time.monotonic() - started
    report.note(
        f"pulled {reference} ({digest or 'digest unknown'}) in {seconds:.0f} s; its labels are the plan's"
    )
    return BuildOutcome(image.tag, built=False, seconds=seconds, log=None, pulled=f"{reference} ({digest})")


def _pull(ex: Executors, report: Reporter, reference: str) -> None:
    with report.pulling(reference) as view:
        ex.engine.pull(reference, view.update)


def _by_tag(
    ex: Executors, report: Reporter, reference: str, pinned: str, *, trust: bool, failure: EngineError
) -> str:
    """The lock's digest could not be pulled: what the tag holds now, if it is the lock's (or trusted)."""
    try:
        _pull(ex, report, reference)
    except EngineError:
        raise NotPulled(
            f"cannot pull {reference} by the lock's digest {pinned} ({failure}) nor by its tag; "
            "--build compiles it here"
        ) from None
    current = ex.engine.repo_digest(reference)
    if current == pinned:
        return reference
    if not trust:
        raise NotPulled(
            f"the published {reference} is {current}, not {pinned} as the image lock says (pushed again, or "
            "tampered with); --build compiles it here, --trust-tag takes the tag's image as it is"
        )
    report.note(f"--trust-tag: taking {reference} as it is now ({current}), not the lock's {pinned}")
    return reference
