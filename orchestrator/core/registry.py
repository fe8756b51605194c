"""Registries: the setting that names where published images live, and the reference of a plan's image
there. Pure."""

from __future__ import annotations

import re

NO_REGISTRY = "none"

# No namespace is spelled here: the registry setting defaults to none, and above that default stands the
# namespace the image lock this package ships names (app.config), the one its release pushed its images
# to (CI writes it: ghcr.io/<the owner of the repository CI runs in>). A package no release built pulls
# nothing and compiles.
# host[:port]/namespace[/more], lower case as registries want them.
_REGISTRY = re.compile(r"[a-z0-9.-]+(:\d{1,5})?(/[a-z0-9._-]+)+")


def parse_registry(text: str) -> str:
    """A registry setting: none, or host[:port]/namespace (ghcr.io/OWNER, 127.0.0.1:5000/ci)."""
    value = text.strip().rstrip("/")
    if value == NO_REGISTRY:
        return value
    if not _REGISTRY.fullmatch(value):
        raise ValueError(
            "expected none or a registry and namespace such as ghcr.io/OWNER or 127.0.0.1:5000/ci"
        )
    return value


def published_reference(registry: str, tag: str) -> str | None:
    """Where the image of this tag is published: the registry's namespace plus the plan's own tag."""
    return None if registry == NO_REGISTRY else f"{registry}/{tag}"


def registry_host(registry: str) -> str:
    return registry.split("/", 1)[0]


def repository_of(reference: str) -> str:
    """A reference without its tag or digest: 127.0.0.1:5000/ci/step-flash-llama:vulkan-cpu-0c1e570 ->
    127.0.0.1:5000/ci/step-flash-llama (a port's colon is not a tag's)."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
