"""Published images: where CI pushes each plan's image, the digests it recorded in the lock that ships with
the package, and whether a pulled image is the plan's (its labels against the plan). Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.plan.image import ImageBuild
from orchestrator.errors import ConfigError

# Labels a pulled image must carry equal to the plan's, and labels it must carry at all (what the
# build found: the RPC protocol of its ggml-rpc).
PLAN_DIGEST_LABEL = "io.step-flash.plan-digest"
REVISION_LABEL = "org.opencontainers.image.revision"
CMAKE_FLAGS_LABEL = "io.step-flash.cmake-flags"
MEASURED_LABELS = ("io.step-flash.rpc-protocol",)


@dataclass(frozen=True)
class ImageLock:
    """What CI pushed: per published reference, the digest of each platform's image."""

    digests: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # The namespace the release pushed to (ghcr.io/OWNER): where `up` pulls from by default.
    registry: str | None = None

    def digest(self, reference: str, platform: str) -> str | None:
        return self.digests.get(reference, {}).get(platform)

    def with_pushed(self, reference: str, platform: str, digest: str) -> ImageLock:
        entries = {ref: dict(platforms) for ref, platforms in self.digests.items()}
        entries.setdefault(reference, {})[platform] = digest
        return ImageLock(entries, self.registry)

    def to_json(self) -> str:
        data: dict[str, Any] = {"version": 1, "images": self.digests}
        if self.registry:
            data["registry"] = self.registry
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def parse_lock(text: str, origin: str) -> ImageLock:
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"the image lock {origin} does not parse ({exc}); restore it from the package"
        ) from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(images, dict):
        raise ConfigError(f"the image lock {origin} is not a version 1 lock with an 'images' map; restore it")
    for reference, platforms in images.items():
        if not isinstance(platforms, dict) or not all(
            isinstance(d, str) and _DIGEST.fullmatch(d) for d in platforms.values()
        ):
            raise ConfigError(f"the image lock {origin} holds a malformed digest for {reference}; restore it")
    registry = data.get("registry")
    if registry is not None and (not isinstance(registry, str) or not registry.strip()):
        raise ConfigError(f"the image lock {origin} names a registry that is not a name; restore it")
    return ImageLock(
        {str(ref): {str(p): str(d) for p, d in platforms.items()} for ref, platforms in images.items()},
        registry,
    )


def label_difference(build: ImageBuild, labels: Mapping[str, str], platform: str) -> str | None:
    """Why a pulled image is not this plan's, in a few words; None when it is."""
    if platform != build.platform:
        return f"it is for {platform}, the plan for {build.platform}"
    for name in (PLAN_DIGEST_LABEL, REVISION_LABEL, CMAKE_FLAGS_LABEL):
        if labels.get(name) != build.labels.get(name):
            return f"its label {name} is {labels.get(name)!r}, the plan's {build.labels.get(name)!r}"
    for name in MEASURED_LABELS:
        if not labels.get(name):
            return f"it has no {name} label (an image this project's build did not make)"
    return None


def locked(lock: ImageLock, builds: list[Mapping[str, Any]], origin: str) -> ImageLock:
    """The lock with what CI pushed: each `orchestrator build --push --json` record's reference, platform
    and digest. A record that pushed nothing (a pull request's) is left out."""
    for build in builds:
        pushed, digest, platform = build.get("pushed"), build.get("digest"), build.get("platform")
        if not pushed:
            continue
        if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)) or not isinstance(platform, str):
            raise ConfigError(f"{origin}: a pushed image without its platform and sha256 digest: {pushed}")
        lock = lock.with_pushed(str(pushed), platform, digest)
    return lock
