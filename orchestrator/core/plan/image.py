"""The image build: which Dockerfile and bases, every build argument (the one list of cmake flags
included), the tag, the labels and the digest that says whether an existing image is the same. A build
for another architecture compiles on this machine's where the family can cross-compile (core.cross)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.cross import build_platform, cross_cmake_flags, cross_packages, is_cross
from orchestrator.core.families import CMakeFlag
from orchestrator.core.plan.build_args import cmake_args, plan_digest, source_build_args
from orchestrator.core.plan.layout import (
    CONTAINER_CACHE_DIR,
    CONTAINER_DRIVER_FILE,
    CONTAINER_PORT,
    CONTAINER_UID,
    SHIPPED_TOOLS,
)
from orchestrator.core.platforms import REFERENCE_PLATFORM, host_platform, platform_arch
from orchestrator.core.registry import published_reference
from orchestrator.core.settings import Settings
from orchestrator.core.sources import Source
from orchestrator.errors import UsageError


@dataclass(frozen=True)
class ImageBuild:
    family: str
    dockerfile: str
    stage: str
    platform: str
    tag: str
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    # A local source is copied into the build context; a git source is fetched inside the build.
    source_dir: str | None
    digest: str
    # Where the build stages run: the image's platform, or the build machine's when cross-compiling.
    build_platform: str
    # BuildKit cache to read and fill (a CI cache); it does not change what is built.
    cache: str | None = None
    # Where CI publishes this very image (the registry setting plus the tag); None: never pulled.
    published: str | None = None

    @property
    def cross(self) -> bool:
        return is_cross(self.build_platform, self.platform)


def local_base_images(family: str, platform: str, build_platform: str | None = None) -> tuple[str, str]:
    """Tags `orchestrator bases bootstrap` gives the bases it makes without a registry: one pair per
    architecture (the engine keeps one image per tag); amd64's, the first made, keep their short tags.
    Cross-compiling, the build base is the build machine's (build_platform), the runtime base the image's."""

    def suffix(of: str) -> str:
        return "" if of == REFERENCE_PLATFORM else "-" + platform_arch(of).name

    return (
        f"step-flash-base:{family}-build{suffix(build_platform or platform)}",
        f"step-flash-base:{family}-runtime{suffix(platform)}",
    )


def image_build(
    target: Target,
    profile: Profile,
    source: Source,
    settings: Settings,
    flags: Sequence[CMakeFlag],
    machine: str,
) -> ImageBuild:
    family = target.family
    if family is None:
        raise UsageError(f"target {target.name} has no container image: it runs on the host")
    here = host_platform(machine) if target.follows_host else None
    platform = settings.platform or here or target.platform
    builder = build_platform(family, platform, machine)
    packages = family.build_packages
    if is_cross(builder, platform):
        packages += cross_packages(family, platform_arch(platform))
        flags = (*flags, *cross_cmake_flags(platform_arch(platform)))
    if settings.bases == "local":
        build_base, runtime_base = local_base_images(family.name, platform, builder)
    else:
        build_base, runtime_base = family.build_base, family.runtime_base
    args = {
        "BUILD_BASE": build_base,
        "RUNTIME_BASE": runtime_base,
        "BUILD_PACKAGES": " ".join(packages),
        "RUNTIME_PACKAGES": " ".join(family.runtime_packages),
        "DRIVER_PACKAGE": family.driver_package or "",
        "DRIVER_FILE": str(CONTAINER_DRIVER_FILE),
        **source_build_args(source),
        "CMAKE_ARGS": cmake_args(flags),
        "LLAMA_TARGETS": " ".join(SHIPPED_TOOLS),
        "LLAMA_BUILD_COMMIT": source.short_revision,
        "LLAMA_UID": str(CONTAINER_UID),
        "LLAMA_CACHE_DIR": str(CONTAINER_CACHE_DIR),
        "SERVER_PORT": str(CONTAINER_PORT),
    }
    variant = f"-{profile.variant.name}" if profile.variant else ""
    # A target built for another architecture than its own (a DGX Spark image built on amd64) says so.
    arch = "" if platform == target.platform else "-" + platform_arch(platform).name
    tag = f"{settings.image_repo}:{family.name}-{target.name}{variant}{arch}-{source.short_revision}"
    # Where the source comes from (git, a local copy, a mirror) does not change the image: its commit does.
    location = set(source_build_args(source))
    digest = plan_digest(
        {
            "platform": platform,
            "dockerfile": family.dockerfile,
            "args": {k: v for k, v in args.items() if k not in location},
            "revision": source.revision or source.commit,
        }
    )
    labels = {
        "org.opencontainers.image.title": f"llama.cpp for {target.title}",
        "org.opencontainers.image.source": source.url or str(source.path),
        "org.opencontainers.image.revision": source.commit or source.revision or "",
        "io.step-flash.target": target.name,
        "io.step-flash.variant": profile.variant.name if profile.variant else "",
        "io.step-flash.cmake-flags": cmake_args(flags),
        "io.step-flash.plan-digest": digest,
    }
    return ImageBuild(
        family=family.name,
        dockerfile=family.dockerfile,
        stage="runtime",
        platform=platform,
        tag=tag,
        build_args=args,
        labels=labels,
        source_dir=str(source.path) if source.kind == "local" else None,
        digest=digest,
        build_platform=builder,
        cache=settings.build_cache,
        published=published_reference(settings.registry, tag) if settings.build != "always" else None,
    )
