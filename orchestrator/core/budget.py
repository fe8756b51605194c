"""How much memory a plan may use: read from the host when the host is the target machine, else the
catalogue's figure for that machine. Pure: host facts in, a budget out."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.catalogue import MAC_WIRED_LIMIT_MB, Profile, Target
from orchestrator.core.detect import detect_target
from orchestrator.core.facts import HostFacts

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Budget:
    usable: int | None
    source: str
    # Where the limit itself can be raised: (what to do, the bytes it would give).
    raise_to: tuple[str, int] | None = None


def _wired_hook_mb(profile: Profile) -> int | None:
    return next((h.value for h in profile.hooks if h.kind == "wired-limit"), None)


def budget(target: Target, profile: Profile, facts: HostFacts) -> Budget:
    spec = target.memory
    on_target = detect_target(facts).target == target.name
    catalogue = int(spec.usable_gib * GIB) if spec.usable_gib is not None else None
    mem_available = facts.mem_available_kib * 1024 if facts.mem_available_kib else None

    if spec.limit == "wired-limit":
        hook_mb = _wired_hook_mb(profile)
        if hook_mb:
            return Budget(hook_mb * MIB, f"Metal wired limit once the profile's hook sets {hook_mb} MB")
        raise_to = (
            f"raise the Metal wired limit: sudo sysctl iogpu.wired_limit_mb={MAC_WIRED_LIMIT_MB} "
            "(or --profile long-context)",
            MAC_WIRED_LIMIT_MB * MIB,
        )
        if on_target and facts.wired_limit_mb:
            return Budget(facts.wired_limit_mb * MIB, "iogpu.wired_limit_mb of this Mac", raise_to)
        return Budget(catalogue, spec.source, raise_to)

    if spec.limit == "gtt" and on_target and facts.gtt_total_bytes:
        usable = facts.gtt_total_bytes
        source = "GTT size of this machine (mem_info_gtt_total)"
        if mem_available is not None and mem_available < usable:
            usable, source = mem_available, "MemAvailable of this machine (below its GTT size)"
        return Budget(usable, source)

    if (on_target or catalogue is None) and mem_available is not None:
        hooked = any(h.kind == "drop-page-cache" for h in profile.hooks)
        return Budget(
            mem_available,
            "MemAvailable of this host" + (" (the page-cache drop frees what it counts)" if hooked else ""),
        )
    if catalogue is None:
        return Budget(None, "unknown: this host reports no MemAvailable")
    return Budget(catalogue, f"{spec.source}; planned from another machine")
