"""Which local base images a build uses where none can be pulled, and what goes into each: a Debian
trixie root file system (the distribution of the Vulkan family's upstream bases too) with the packages a
stage needs, for the image's architecture, and for CUDA NVIDIA's CUDA 13 wheels for that architecture.
Pure: orchestrator.executors.bases makes them (debootstrap, the wheels unpacked), the engine imports them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.core.families import ImageFamily
from orchestrator.core.plan.image import local_base_images
from orchestrator.core.platforms import REFERENCE_PLATFORM, platform_arch

DEBIAN_SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Role = Literal["build", "runtime"]
# Bumped whenever the way bases are made changes, so existing ones are made again.
RECIPE_VERSION = "3"


@dataclass(frozen=True)
class Wheel:
    requirement: str
    roles: tuple[Role, ...]


# CUDA 13.0, as in the nvidia/cuda:13.0.1 images; cuobjdump and nvdisasm exist as wheels from 13.2 only.
CUDA_WHEELS: tuple[Wheel, ...] = (
    Wheel("nvidia-cuda-nvcc==13.0.88", ("build",)),
    Wheel("nvidia-nvvm==13.0.88", ("build",)),
    Wheel("nvidia-cuda-crt==13.0.88", ("build",)),
    Wheel("nvidia-cuda-cccl==13.0.85", ("build",)),
    Wheel("nvidia-cuda-runtime==13.0.96", ("build", "runtime")),
    Wheel("nvidia-cublas==13.0.2.14", ("build", "runtime")),
    Wheel("nvidia-cuda-cuobjdump==13.2.51", ("build",)),
    Wheel("nvidia-cuda-nvdisasm==13.2.51", ("build",)),
)


@dataclass(frozen=True)
class BaseSpec:
    tag: str
    role: Role
    family: str
    packages: tuple[str, ...]
    suite: str
    mirror: str
    wheels: tuple[str, ...] = ()
    platform: str = REFERENCE_PLATFORM

    @property
    def digest(self) -> str:
        parts = [RECIPE_VERSION, self.platform, self.suite, self.mirror, *sorted(self.packages), *self.wheels]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def debootstrap_argv(self, root: Path) -> list[str]:
        return [
            "debootstrap",
            "--variant=minbase",
            "--components=main",
            f"--arch={platform_arch(self.platform).name}",
            f"--include={','.join(self.packages)}",
            self.suite,
            str(root),
            self.mirror,
        ]


def base_specs(
    family: ImageFamily,
    platform: str = REFERENCE_PLATFORM,
    mirror: str = DEFAULT_MIRROR,
    *,
    build_platform: str | None = None,
) -> tuple[BaseSpec, BaseSpec]:
    """The bases an image of `platform` is built on: the build base of `build_platform` where the build
    stages run elsewhere (cross-compiling, see core.cross), the runtime base of the image's own."""
    platforms: dict[Role, str] = {"build": build_platform or platform, "runtime": platform}
    tags = dict(
        zip(("build", "runtime"), local_base_images(family.name, platform, build_platform), strict=True)
    )
    # debootstrap takes packages of its suite only; those of another (PACKAGE/SUITE) come in the image's apt step.
    packages = {
        role: tuple(p for p in names if "/" not in p)
        for role, names in (("build", family.build_packages), ("runtime", family.runtime_packages))
    }

    def spec(role: Role) -> BaseSpec:
        wheels = tuple(w.requirement for w in CUDA_WHEELS if role in w.roles) if family.name == "cuda" else ()
        return BaseSpec(
            tags[role], role, family.name, packages[role], DEBIAN_SUITE, mirror, wheels, platforms[role]
        )

    return spec("build"), spec("runtime")
