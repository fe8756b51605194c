"""Processor architectures as docker, the kernel, Debian, Python wheels and QEMU each spell them, and
what a machine of one architecture needs to build or run images of another."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Arch:
    name: str  # docker's and Debian's name (amd64, arm64)
    machine: str  # the kernel's (uname -m) and the wheels' platform tags' (x86_64, aarch64)

    @property
    def gnu_triple(self) -> str:
        """Debian's multiarch name, also its cross compilers' prefix (aarch64-linux-gnu-gcc)."""
        return f"{self.machine}-linux-gnu"

    @property
    def emulator(self) -> str:
        """binfmt_misc's entry for QEMU's user-mode emulator of this architecture."""
        return f"qemu-{self.machine}"


ARCHES: Mapping[str, Arch] = {a.name: a for a in (Arch("amd64", "x86_64"), Arch("arm64", "aarch64"))}
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
# The platform the project has always built on: its local bases keep their short tags.
REFERENCE_PLATFORM = "linux/amd64"


def platform_arch(platform: str) -> Arch:
    """linux/arm64 -> arm64."""
    name = platform.split("/")[-1]
    if name not in ARCHES:
        raise ValueError(f"unsupported platform {platform!r}")
    return ARCHES[name]


def machine_arch(machine: str) -> str:
    """uname -m (x86_64, aarch64; macOS says arm64) -> docker's name; unknown names pass through."""
    return _MACHINES.get(machine, machine)


def host_platform(machine: str) -> str | None:
    """uname -m -> the Linux platform of that architecture, None for one the images are not built for."""
    arch = machine_arch(machine)
    return f"linux/{arch}" if arch in ARCHES else None


@dataclass(frozen=True)
class EmulationProblem:
    severity: Literal["fail", "warn"]  # fail: nothing runs; warn: registered, not usable by containers
    message: str
    fix: str


REGISTER_SCRIPT = "scripts/register-qemu.sh"


def emulation_problem(platform: str, machine: str, emulators: Mapping[str, str]) -> EmulationProblem | None:
    """Why this machine (uname -m) cannot run platform's programs, or None when it can: natively, or under
    QEMU registered with binfmt_misc's F flag (the kernel then opens the interpreter once, so containers
    and chroots of the other architecture need no copy of it). emulators: binfmt entry -> its flags."""
    wanted, here = platform_arch(platform), machine_arch(machine)
    if wanted.name == here:
        return None
    flags = emulators.get(wanted.emulator)
    register = f"sudo apt install qemu-user-static, then sudo {REGISTER_SCRIPT} {wanted.machine}"
    if flags is None:
        return EmulationProblem(
            "fail",
            f"this {here} machine has no {wanted.emulator} registered with binfmt_misc: it cannot run "
            f"{platform} programs",
            f"{register}; or build on an {wanted.name} machine, or pass --platform linux/{here}",
        )
    if "F" not in flags:
        return EmulationProblem(
            "warn",
            f"{wanted.emulator} is registered without the F (fix binary) flag (flags: {flags or 'none'}): "
            f"{wanted.name} containers do not carry the interpreter, so their programs will not start",
            f"register it again with the F flag: {register}",
        )
    return None
