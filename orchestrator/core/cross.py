"""Where an image's build stages run: on the image's own architecture, or cross-compiling on the build
machine's (an arm64 image built on amd64 without hours of emulated compiling)."""

from __future__ import annotations

from orchestrator.core.families import CMakeFlag, ImageFamily
from orchestrator.core.platforms import Arch, host_platform, platform_arch


def build_platform(family: ImageFamily, platform: str, machine: str) -> str:
    """The platform the build stages run on for an image of `platform` built on a `machine` (uname -m):
    the machine's own where the family cross-compiles, else the image's."""
    here = host_platform(machine)
    return platform if family.cross_packages is None or here is None else here


def cross_packages(family: ImageFamily, target: Arch) -> tuple[str, ...]:
    """What the build stage installs to compile for `target` on another architecture: Debian's cross
    toolchain and the libraries the build links against, in the target's architecture (multiarch)."""
    return (
        f"crossbuild-essential-{target.name}",
        *(f"{p}:{target.name}" for p in family.cross_packages or ()),
    )


def cross_cmake_flags(target: Arch) -> tuple[CMakeFlag, ...]:
    """cmake's cross-compiling settings for Debian's cross toolchain; libraries come from the target's
    multiarch folder (/usr/lib/aarch64-linux-gnu)."""
    triple = target.gnu_triple
    return (
        ("CMAKE_SYSTEM_NAME", "Linux"),
        ("CMAKE_SYSTEM_PROCESSOR", target.machine),
        ("CMAKE_C_COMPILER", f"{triple}-gcc"),
        ("CMAKE_CXX_COMPILER", f"{triple}-g++"),
        ("CMAKE_LIBRARY_ARCHITECTURE", triple),
    )


def is_cross(build: str, platform: str) -> bool:
    return platform_arch(build) != platform_arch(platform)
