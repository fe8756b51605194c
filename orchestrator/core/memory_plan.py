"""The memory section of a plan, pure: each program the plan runs (the server, each benchmark set) as a
workload, its estimate from the model's architecture, and whether it fits this target's budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.core.architecture import Architecture
from orchestrator.core.budget import Budget, budget
from orchestrator.core.catalogue import BenchSet, Profile, Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.memory import GIB, Estimate, Fit, Workload, estimate, fit
from orchestrator.core.models import ModelSpec
from orchestrator.core.settings import Settings, memory_bytes
from orchestrator.core.speculation import MtpHeads, Speculation

# A memory_limit below the machine's memory is the budget, and raising it the first fix.
LIMIT_SOURCE = "the server container's memory_limit"
LIMIT_FIX = "a higher memory_limit, or none"
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
    # The budget is the server container's memory_limit (lower than the machine's).
    capped: bool = False

    @property
    def verdict(self) -> str:
        if not self.rows:
            return f"unknown: {self.model_source}"
        machines = [r for r in self.rows if r.use.startswith("server (")]
        if machines:
            short = next((r for r in machines if r.fit.fits is False), None)
            if short is not None:
                return f"{short.use}: {short.fit.verdict()}"
            return f"fits on {len(machines)} machines: " + "; ".join(
                f"{r.use.removeprefix('server (').removesuffix(')')} {r.fit.short()}" for r in machines
            )
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


def server_outputs(slots: int, batch: int, draft_n: int) -> int:
    """llama-server's output rows: one per slot and per draft token, at most a batch (server_output_limits)."""
    return min(batch, slots * (1 + draft_n))


def server_workload(
    profile: Profile, settings: Settings, model: ModelSpec, speculation: Speculation
) -> Workload:
    slots = (profile.speculative_slots if speculation.active else None) or SERVER_SLOTS
    arch = model.arch
    heads = arch.heads() if arch is not None and speculation.heads else None
    work = profile_server(
        profile,
        int(settings.ctx_size or profile.ctx),
        slots=slots,
        draft_n=speculation.draft_n,
        heads=heads,
    )
    # The vision projector, where the model has one: llama-server loads it beside the model (--mmproj).
    return replace(work, projector=model.projector)


def profile_server(
    profile: Profile,
    ctx: int,
    *,
    cache: str | None = None,
    slots: int = SERVER_SLOTS,
    draft_n: int = 0,
    heads: Architecture | None = None,
) -> Workload:
    """llama-server as the profile runs it at this context (cache: a KV cache type in place of the profile's)."""
    return Workload(
        ctx=ctx,
        batch=profile.batch,
        ubatch=profile.ubatch,
        cache_k=cache or profile.cache_type_k or "f16",
        cache_v=cache or profile.cache_type_v or "f16",
        flash_attn=profile.flash_attn != "off",
        n_seq=slots,
        outputs=server_outputs(slots, profile.batch, draft_n),
        draft_heads=heads,
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


def trunk_bytes(weights_bytes: int, mtp: MtpHeads | None) -> int:
    """The weights a program loads without drafting: llama.cpp skips a combined file's MTP blocks then."""
    return weights_bytes - (mtp.bytes if mtp is not None and mtp.layout == "combined" else 0)


def _server_row(
    arch: Architecture, trunk: int, work: Workload, speculation: Speculation, limit: Budget
) -> MemoryRow:
    weights = trunk + speculation.heads_bytes
    found = fit(arch, weights, work, limit.usable, limit.raise_to)
    # Seeing costs memory too: say when text only would fit.
    if (
        found.fits is False
        and limit.usable is not None
        and work.projector is not None
        and estimate(arch, weights, replace(work, projector=None)).total <= limit.usable
    ):
        found = replace(found, fixes=("text only, no images: --mmproj none", *found.fixes))
    if found.fits is not False or not speculation.active or limit.usable is None:
        return MemoryRow("server", work, found)
    # Speculating costs memory: say first what drafting less, or not at all, would give back.
    fixes: list[str] = []
    if speculation.spec_type == "draft-mtp":
        for fewer in range(speculation.draft_n - 1, 0, -1):
            smaller = replace(work, outputs=server_outputs(work.n_seq, work.batch, fewer))
            if estimate(arch, weights, smaller).total <= limit.usable:
                fixes.append(f"fewer draft tokens: --spec mtp:{fewer}")
                break
    plain = replace(
        work, n_seq=SERVER_SLOTS, outputs=server_outputs(SERVER_SLOTS, work.batch, 0), draft_heads=None
    )
    if estimate(arch, trunk, plain).total <= limit.usable:
        fixes.append("speculative decoding off: --spec off")
    return MemoryRow("server", work, replace(found, fixes=(*fixes, *found.fixes)))


def _shares(usable: Sequence[int]) -> list[float]:
    total = sum(usable)
    return [u / total for u in usable]


def spread_rows(
    arch: Architecture,
    trunk: int,
    work: Workload,
    speculation: Speculation,
    limit: Budget,
    worker_usable: Sequence[int | None],
    workers: Sequence[object],
) -> list[MemoryRow]:
    """The server spread over the head and its RPC workers as llama.cpp spreads it by default: layers (and
    their weights and KV cells) in proportion to each machine's free memory, and a compute buffer on
    each. Each machine's share is held against its own usable memory; the head's figure is this host's,
    a worker's its target's."""
    whole = estimate(arch, trunk + speculation.heads_bytes, work)
    usable = [limit.usable, *worker_usable]
    if any(u is None for u in usable):
        return [MemoryRow("server", work, Fit(whole, None, ()))]
    known = [int(u) for u in usable if u is not None]
    rows = []
    names = ["server (head)", *(f"server (worker {w})" for w in workers)]
    for name, share, room in zip(names, _shares(known), known, strict=True):
        part = replace(
            whole,
            weights=int(whole.weights * share),
            kv=int(whole.kv * share),
            kv_swa=int(whole.kv_swa * share),
            draft=int(whole.draft * share),
        )
        fixes = () if part.total <= room else _spread_fixes(whole, known, work)
        rows.append(MemoryRow(name, work, Fit(part, room, fixes)))
    return rows


def _spread_fixes(whole: Estimate, usable: Sequence[int], work: Workload) -> tuple[str, ...]:
    """What would make a spread server fit: one more worker like the last, a quantised cache, less context."""
    more = [*usable, usable[-1]]
    spread = whole.total - whole.compute
    fixes = []
    if all(spread * share + whole.compute <= room for share, room in zip(_shares(more), more, strict=True)):
        fixes.append("another RPC worker: --rpc ADDRESS:PORT,... ('orchestrator worker up' on it)")
    if work.cache_k == "f16":
        fixes.append("quantise the KV cache: -ctk q8_0 -ctv q8_0 (some loss of accuracy)")
    fixes.append("a smaller context: --ctx-size")
    return tuple(fixes)


def _with_worker_fix(row: MemoryRow, usable: int, *, first: bool) -> MemoryRow:
    """A server that does not fit one machine: say so when a second machine of the same kind would do
    (first, for a profile made for workers)."""
    whole = row.fit.estimate
    if (whole.total - whole.compute) / 2 + whole.compute > usable:
        return row
    fix = "a second machine as an RPC worker: 'orchestrator worker up' there, then --rpc ADDRESS:PORT here"
    fixes = (fix, *row.fit.fixes) if first else (*row.fit.fixes, fix)
    return replace(row, fit=replace(row.fit, fixes=fixes))


def memory_plan(
    target: Target,
    profile: Profile,
    model: ModelSpec,
    settings: Settings,
    facts: HostFacts,
    benches: Sequence[BenchSet],
    speculation: Speculation,
) -> MemoryPlan:
    limit: Budget = budget(target, profile, facts)
    cap = settings.memory_limit
    capped = cap is not None and (limit.usable is None or memory_bytes(cap) < limit.usable)
    if cap is not None and capped:
        limit = Budget(memory_bytes(cap), f"{LIMIT_SOURCE} ({cap})")
    usable_gib = round(limit.usable / GIB, 1) if limit.usable is not None else None
    if model.arch is None or model.weights_bytes is None:
        why = model.problem or f"the model file is not here ({model.path})"
        return MemoryPlan(usable_gib, limit.source, f"no architecture to plan with: {why}", ())
    arch, trunk = model.arch, trunk_bytes(model.weights_bytes, model.mtp)
    work = server_workload(profile, settings, model, speculation)
    workers = settings.rpc
    if workers:
        worker_usable = int(target.memory.usable_gib * GIB) if target.memory.usable_gib else limit.usable
        rows = spread_rows(arch, trunk, work, speculation, limit, [worker_usable] * len(workers), workers)
    else:
        rows = [_server_row(arch, trunk, work, speculation, limit)]
        if rows[0].fit.fits is False and limit.usable is not None:
            rows[0] = _with_worker_fix(rows[0], limit.usable, first=profile.rpc_workers > 0)
    rows += [
        MemoryRow(
            f"bench {b.name}",
            bench_workload(b),
            fit(arch, trunk, bench_workload(b), limit.usable, limit.raise_to),
        )
        for b in benches
    ]
    if capped:
        rows = [
            replace(r, fit=replace(r.fit, fixes=(LIMIT_FIX, *r.fit.fixes))) if r.fit.fits is False else r
            for r in rows
        ]
    return MemoryPlan(usable_gib, limit.source, model.arch_source or "model metadata", tuple(rows), capped)


def out_of_memory(memory: MemoryPlan) -> str:
    """What to say when the kernel ended the server for want of memory: the plan's figures for the
    server, and what would make it smaller or leave it more room."""
    row = next((r for r in memory.rows if r.use.startswith("server")), None)
    said = "the kernel's OOM killer ended llama-server (OOMKilled, exit 137)"
    if row is None:
        return f"{said}; {memory.model_source}"
    est, work = row.fit.estimate, row.workload
    usable = f" of {memory.usable_gib} GiB usable ({memory.usable_source})" if memory.usable_gib else ""
    figures = (
        f"the memory plan puts the server at {est.total / GIB:.2f} GiB{usable}: weights "
        f"{est.weights / GIB:.2f}, KV {(est.kv + est.kv_swa) / GIB:.2f}, compute {est.compute / GIB:.2f} "
        f"GiB for -c {work.ctx} -ub {work.ubatch}"
    )
    fixes = list(row.fit.fixes) or [
        f"a smaller context: --ctx-size {work.ctx // 2}",
        *(["quantise the KV cache: -ctk q8_0 -ctv q8_0"] if work.cache_k == "f16" else []),
        "free memory: stop what else runs here, or drop the page cache",
    ]
    if LIMIT_FIX not in fixes and memory.capped:
        fixes.insert(0, LIMIT_FIX)
    return f"{said}; {figures}; fixes: " + "; ".join(fixes)
