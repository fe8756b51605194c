"""Local base images for hosts that cannot pull from a registry: debootstrap a Debian root file
system holding what a stage needs, and `docker import` it. Debian trixie, because bookworm's Vulkan
headers are too old for llama.cpp."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.engine import Engine
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.plan import local_base_images
from orchestrator.targets import ImageFamily

DEBIAN_SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DIGEST_LABEL = "io.step-flash.base-digest"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Role = Literal["build", "runtime"]


@dataclass(frozen=True)
class BaseSpec:
    tag: str
    role: Role
    family: str
    packages: tuple[str, ...]
    suite: str
    mirror: str

    @property
    def digest(self) -> str:
        text = "\n".join([self.suite, self.mirror, *sorted(self.packages)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def debootstrap_argv(self, root: Path) -> list[str]:
        return [
            "debootstrap",
            "--variant=minbase",
            "--components=main",
            f"--include={','.join(self.packages)}",
            self.suite,
            str(root),
            self.mirror,
        ]


@dataclass(frozen=True)
class BaseOutcome:
    tag: str
    made: bool
    seconds: float


def base_specs(family: ImageFamily, mirror: str = DEFAULT_MIRROR) -> tuple[BaseSpec, BaseSpec]:
    if family.name == "cuda":
        raise UsageError(
            "local CUDA bases are not available yet (the CUDA toolkit is not in Debian main); "
            "use --bases upstream with nvidia/cuda images"
        )
    build_tag, runtime_tag = local_base_images(family.name)
    return (
        BaseSpec(build_tag, "build", family.name, family.build_packages, DEBIAN_SUITE, mirror),
        BaseSpec(runtime_tag, "runtime", family.name, family.runtime_packages, DEBIAN_SUITE, mirror),
    )


def bootstrap_base(engine: Engine, spec: BaseSpec, work_dir: Path, *, rebuild: bool = False) -> BaseOutcome:
    labels = engine.image_labels(spec.tag)
    if labels is not None and labels.get(DIGEST_LABEL) == spec.digest and not rebuild:
        return BaseOutcome(spec.tag, made=False, seconds=0.0)
    if shutil.which("debootstrap") is None:
        raise OrchestratorError("debootstrap is not installed; install it (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise OrchestratorError(
            "making base images runs debootstrap, which needs root; run this command with sudo"
        )
    started = time.monotonic()
    scratch = work_dir / "bases" / spec.tag.replace(":", "_")
    shutil.rmtree(scratch, ignore_errors=True)
    root, tarball, log = (
        scratch / "rootfs",
        scratch / "rootfs.tar",
        work_dir / "logs" / f"base-{spec.role}-{spec.family}.log",
    )
    scratch.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as out:
            done = subprocess.run(
                spec.debootstrap_argv(root), stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise OrchestratorError(
                f"debootstrap of {spec.tag} failed (exit {done.returncode}); full log: {log}"
            )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        engine.import_rootfs(
            tarball,
            spec.tag,
            changes=[f"ENV PATH={_PATH}", f"LABEL {DIGEST_LABEL}={spec.digest}", 'CMD ["/bin/bash"]'],
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return BaseOutcome(spec.tag, made=True, seconds=time.monotonic() - started)
