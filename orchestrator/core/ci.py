"""The CI build matrix, from the catalogue: one image per container target and build variant, on a runner
of the image's own architecture (a CUDA compile under QEMU emulation would take hours)."""

from __future__ import annotations

from typing import Any

from orchestrator.core.catalogue import CATALOGUE

RUNNERS = {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}
# Images that are cheap to build for the other architecture too (no GPU toolkit to compile).
EXTRA_PLATFORMS = {"cpu": ("linux/arm64",)}


def ci_matrix() -> dict[str, Any]:
    include: list[dict[str, str]] = []
    for target in CATALOGUE.values():
        if target.runtime != "container":
            continue
        # Profiles without a build variant share the default image; each variant is an image of its own.
        profiles = [p for p in target.profiles if p.variant is not None or p.name == "default"]
        for profile in profiles:
            for platform in (target.platform, *EXTRA_PLATFORMS.get(target.name, ())):
                arch = platform.split("/")[1]
                include.append(
                    {
                        "name": f"{target.name}-{profile.name}-{arch}",
                        "target": target.name,
                        "profile": profile.name,
                        "platform": platform,
                        "runner": RUNNERS[platform],
                    }
                )
    return {"include": include}
