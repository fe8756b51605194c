"""The memory section of a plan, pure: each program the plan runs (the server, each benchmark set) as a
workload, its estimate from the model's architecture, and whether it fits this target's budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core.budget import Budget, budget
from orchestrator.core.catalogue import BenchSet, Profile, Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.memory import GIB, Fit, Workload, fit
from orchestrator.core.models import ModelSpec
from orchestrator.core.settings import Settings

# llama-server's default when -np is not given: 4 slots sharing one unified cache.
SERVER_SLOTS = 4


@dataclass(frozen=True)
class MemoryRow:
    use: str
    workload: Workload
    fit: Fit

    def named_by(self, uses: Sequence[str]) -> bool:
        """Named by a use ("server"), or by its kind ("bench" names every benchmark set)."""
        return any(self.use == u or self.use.startswith(u + " ") for u in uses)

    def to_dict(self) -> dict[str, Any]:
        return {
            "use": self.use,
            "workload": self.workload.describe(),
            **self.fit.estimate.to_dict(),
            "fits": self.fit.fits,
            "verdict": self.fit.verdict(),
            "fixes": list(self.fit.fixes),
        }


@dataclass(frozen=True)
class MemoryPlan:
    usable_gib: float | None
    usable_source: str
    model_source: str
    rows: tuple[MemoryRow, ...]

    @property
    def verdict(self) -> str:
        if not self.rows:
            return f"unknown: {self.model_source}"
        return self.rows[0].fit.verdict()

    def failing(self, uses: Sequence[str] | None = None) -> list[MemoryRow]:
        """Rows that will not fit, among those the uses name (all rows without uses)."""
        return [r for r in self.rows if r.fit.fits is False and (uses is None or r.named_by(uses))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "usable_gib": self.usable_gib,
            "usable_source": self.usable_source,
            "model_source": self.model_source,
            "verdict": self.verdict,
            "rows": [r.to_dict() for r in self.rows],
        }


def server_workload(profile: Profile, settings: Settings) -> Workload:
    return Workload(
        ctx=int(settings["ctx_size"] or profile.ctx),
        batch=profile.batch,
        ubatch=profile.ubatch,
        cache_k=profile.cache_type_k or "f16",
        cache_v=profile.cache_type_v or "f16",
        flash_attn=profile.flash_attn != "off",
        n_seq=SERVER_SLOTS,
    )


def bench_workload(bench: BenchSet) -> Workload:
    return Workload(
        ctx=bench.ctx,
        batch=bench.batch,
        ubatch=bench.ubatch,
        cache_k=bench.cache_type_k or "f16",
        cache_v=bench.cache_type_v or "f16",
        n_seq=max(bench.npl),
    )


def memory_plan(
    target: Target,
    profile: Profile,
    model: ModelSpec,
    settings: Settings,
    facts: HostFacts,
    benches: Sequence[BenchSet],
) -> MemoryPlan:
    limit: Budget = budget(target, profile, facts)
    usable_gib = round(limit.usable / GIB, 1) if limit.usable is not None else None
    if model.arch is None or model.weights_bytes is None:
        why = model.problem or f"the model file is not here ({model.path})"
        return MemoryPlan(usable_gib, limit.source, f"no architecture to plan with: {why}", ())
    uses = [("server", server_workload(profile, settings))]
    uses += [(f"bench {b.name}", bench_workload(b)) for b in benches]
    rows = tuple(
        MemoryRow(use, work, fit(model.arch, model.weights_bytes, work, limit.usable, limit.raise_to))
        for use, work in uses
    )
    return MemoryPlan(usable_gib, limit.source, model.arch_source or "model metadata", rows)
