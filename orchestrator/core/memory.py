"""Memory-fit arithmetic, pure: what llama.cpp will allocate for a model at a given context, batch and KV
cache type, and what to change when that is more than the machine can give.

The rules follow llama.cpp's own allocation (upstream at the pinned commit): the context is padded to 256
cells; sliding-window layers get their own cache of min(context, window x sequences + ubatch) cells; the
compute buffer is the worst-case prompt-processing graph of one ubatch, whose largest live tensors are the
attention masks, the logits and one layer's activations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from orchestrator.core.architecture import Architecture
from orchestrator.core.models import Projector

GIB = 1 << 30
MIB = 1 << 20

# Bytes per block and elements per block of the types llama.cpp accepts for -ctk / -ctv.
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q4_0": (18, 32),
    "q4_1": (20, 32),
    "iq4_nl": (18, 32),
    "q5_0": (22, 32),
    "q5_1": (24, 32),
}
CELL_PAD = 256


def pad(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def row_bytes(cache_type: str, elements: int) -> int:
    block_bytes, block_elems = CACHE_TYPES[cache_type]
    return elements // block_elems * block_bytes


@dataclass(frozen=True)
class Workload:
    """How a llama.cpp program will use the model: its -c, -b, -ub, -ctk/-ctv, -fa and sequences."""

    ctx: int
    batch: int
    ubatch: int
    cache_k: str = "f16"
    cache_v: str = "f16"
    flash_attn: bool = True
    # llama-server runs 4 slots sharing one unified cache unless told otherwise; the bench tools run npl.
    n_seq: int = 1
    swa_full: bool = False
    # Logits rows the program reserves per ubatch: llama-batched-bench keeps every token's (None);
    # llama-server one per slot, plus one per draft token when it speculates.
    outputs: int | None = None
    # The MTP blocks a speculating server's draft context runs (their own KV cache and graph).
    draft_heads: Architecture | None = None
    # The vision projector llama-server loads beside the model (--mmproj), if any.
    projector: Projector | None = None

    def describe(self) -> str:
        return (
            f"-c {self.ctx} -b {self.batch} -ub {self.ubatch} -ctk {self.cache_k} -ctv {self.cache_v}"
            + ("" if self.flash_attn else " -fa off")
            + (f" + {self.draft_heads.n_layer} MTP heads" if self.draft_heads else "")
            + (f" + {self.projector.projector_type} vision projector" if self.projector else "")
        )


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv: int
    kv_swa: int
    cells: int
    swa_cells: int
    compute: int
    # The draft context of MTP speculation: the heads' KV cache and compute buffer.
    draft: int = 0
    # The vision projector: its weights and its compute buffer.
    vision: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.kv_swa + self.compute + self.draft + self.vision

    def to_dict(self) -> dict[str, float | int]:
        return {
            "weights_gib": round(self.weights / GIB, 2),
            "kv_gib": round((self.kv + self.kv_swa) / GIB, 3),
            "kv_full_mib": round(self.kv / MIB, 2),
            "kv_swa_mib": round(self.kv_swa / MIB, 2),
            "cells": self.cells,
            "swa_cells": self.swa_cells,
            "compute_mib": round(self.compute / MIB, 2),
            "draft_mib": round(self.draft / MIB, 2),
            "vision_mib": round(self.vision / MIB, 2),
            "total_gib": round(self.total / GIB, 2),
        }


def cells(arch: Architecture, work: Workload) -> tuple[int, int]:
    """KV cells of the full-attention cache and of the sliding-window cache (0 when no layer slides)."""
    ctx = pad(work.ctx or arch.context_length, CELL_PAD)
    if not any(arch.swa_layers):
        return ctx, 0
    if work.swa_full:
        return ctx, ctx
    return ctx, pad(min(ctx, arch.sliding_window * work.n_seq + work.ubatch), CELL_PAD)


def kv_bytes(arch: Architecture, work: Workload) -> tuple[int, int]:
    full_cells, swa_cells = cells(arch, work)
    full = swa = 0
    for il in range(arch.n_layer):
        per_cell = row_bytes(work.cache_k, arch.n_head_kv[il] * arch.key_length) + row_bytes(
            work.cache_v, arch.n_head_kv[il] * arch.value_length
        )
        if arch.swa_layers[il]:
            swa += per_cell * swa_cells
        else:
            full += per_cell * full_cells
    return full, swa


def compute_bytes(arch: Architecture, work: Workload) -> int:
    """The worst-case graph of one ubatch of t tokens, the larger of two moments:
    - inside a layer: the attention masks (inputs, alive until the last layer; f16 with flash attention)
      plus the feed-forward activations, per token 4 n_ff + n_embd floats for a dense layer and
      3 x used x n_ff_exp + used x n_embd floats for a mixture-of-experts one;
    - at the output: the logits (n_vocab floats per output row) and two n_embd activations per token.
    A program reserves one logits row per token of the ubatch (llama-batched-bench) or only the outputs it
    can ask for (llama-server: one per slot and draft token). Fitted to llama.cpp's own reports of both
    programs (benchmarks/memory_estimate.py); without flash attention the attention scores (heads x cells
    per token) are added."""
    t = min(work.ubatch, work.batch)
    t_pad = pad(t, 64)
    full_cells, swa_cells = cells(arch, work)
    f32 = 4
    mask_elem = 2 if work.flash_attn else 4
    masks = (full_cells + swa_cells) * t_pad * mask_elem
    dense = 4 * arch.n_ff + arch.n_embd if arch.n_ff else 0
    moe = (
        3 * arch.n_expert_used * arch.n_ff_exp + arch.n_expert_used * arch.n_embd + 8 if arch.n_expert else 0
    )
    layer = masks + max(dense, moe) * t * f32
    if not work.flash_attn:
        layer += max(arch.n_head) * max(full_cells, swa_cells) * t * f32
    rows = t if work.outputs is None else min(t, work.outputs)
    output = (arch.n_vocab * rows + 2 * arch.n_embd * t) * f32
    return max(layer, output)


def draft_bytes(work: Workload) -> int:
    """The MTP draft context: as many cells as the main context, over the heads' layers only."""
    if work.draft_heads is None or work.draft_heads.n_layer == 0:
        return 0
    full, swa = kv_bytes(work.draft_heads, work)
    return full + swa + compute_bytes(work.draft_heads, work)


def vision_compute_bytes(projector: Projector, flash_attn: bool) -> int:
    """The vision encoder's compute buffer. clip.cpp reserves it once (warmup), for the graph of one image
    at its warmup size: for step3vl the encoder's own image_size (a larger picture is cut into slices of
    504 pixels, at most that size, each encoded alone). Derived from that graph (clip.cpp build_inp and
    build_vit, models/step3vl.cpp) for an image of S pixels a side, n = (S / patch)^2 patches of width d,
    in f32, as the largest of three moments: the input (the picture, 3 S^2, the patch convolution's
    im2col, 3 patch^2 n, and its output, nd), a layer's feed-forward (residual, up and activated up:
    n(d + 2 n_ff)) and its attention (residual, fused q/k/v, output: 5nd, plus two n_head x n x n score
    matrices without flash attention). The tiny step3vl projector of tests/tiny_gguf.py (112 px, 64
    patches of width 32) is planned at 0.29 MiB where llama-server reported 0.22 MiB (reserve_compute_meta,
    CPU, at the pin): the input moment, over by a third. For Step-3.7-Flash's encoder (728 px, width 1536,
    as upstream's converter asserts; n_ff 8960 its default ratio; patch 14 not checked here) it gives 2704
    patches and 200.7 MiB with flash attention, the feed-forward moment."""
    encoder = projector.encoder
    if encoder.patch_size <= 0:
        return 0
    side, patch = encoder.image_size, encoder.patch_size
    n = (side // patch) ** 2
    d = encoder.n_embd
    picture = 3 * side * side + 3 * patch * patch * n + n * d
    feed_forward = n * (d + 2 * encoder.n_ff)
    attention = 5 * n * d + (0 if flash_attn else 2 * encoder.n_head * n * n)
    return 4 * max(picture, feed_forward, attention)


def vision_bytes(work: Workload) -> int:
    """The vision projector's weights and compute buffer (0 without one)."""
    if work.projector is None:
        return 0
    return work.projector.weights_bytes + vision_compute_bytes(work.projector, work.flash_attn)


def estimate(arch: Architecture, weights: int, work: Workload) -> Estimate:
    full_cells, swa_cells = cells(arch, work)
    kv_full, kv_swa = kv_bytes(arch, work)
    return Estimate(
        weights,
        kv_full,
        kv_swa,
        full_cells,
        swa_cells,
        compute_bytes(arch, work),
        draft_bytes(work),
        vision_bytes(work),
    )


@dataclass(frozen=True)
class Fit:
    estimate: Estimate
    usable: int | None
    fixes: tuple[str, ...]

    @property
    def fits(self) -> bool | None:
        return None if self.usable is None else self.estimate.total <= self.usable

    def short(self) -> str:
        if self.usable is None:
            return "unknown"
        spare = (self.usable - self.estimate.total) / GIB
        return f"fits, {spare:.1f} GiB spare" if spare >= 0 else f"short by {-spare:.1f} GiB"

    def verdict(self) -> str:
        need = f"{self.estimate.total / GIB:.1f} GiB"
        if self.usable is None:
            return f"needs {need}; this host's usable memory is unknown"
        have = f"{self.usable / GIB:.1f} GiB"
        if self.fits:
            return f"fits: needs {need} of {have} ({(self.usable - self.estimate.total) / GIB:.1f} GiB spare)"
        fix = f"; {self.fixes[0]}" if self.fixes else ""
        return f"does not fit: needs {need} but {have} is usable{fix}"


def largest_context(arch: Architecture, weights: int, work: Workload, usable: int) -> int | None:
    """The largest context (a multiple of 4096, at most the workload's or the model's) that fits usable."""
    step = 4096
    fits: Callable[[int], bool] = lambda c: estimate(arch, weights, replace(work, ctx=c)).total <= usable  # noqa: E731
    if not fits(step):
        return None
    low, high = 1, max(work.ctx or arch.context_length, step) // step
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid * step):
            low = mid
        else:
            high = mid - 1
    return low * step


def fit(
    arch: Architecture,
    weights: int,
    work: Workload,
    usable: int | None,
    raise_limit: tuple[str, int] | None = None,
) -> Fit:
    """Whether the workload fits, and if not, each change that would make it fit, most effective first.
    raise_limit is (how, bytes) where the usable memory itself can be raised (the Mac's wired limit)."""
    base = estimate(arch, weights, work)
    if usable is None or base.total <= usable:
        return Fit(base, usable, ())
    fixes: list[str] = []
    if raise_limit is not None and estimate(arch, weights, work).total <= raise_limit[1]:
        fixes.append(raise_limit[0])
    if work.cache_k == "f16" or work.cache_v == "f16":
        quantised = replace(work, cache_k="q8_0", cache_v="q8_0")
        if estimate(arch, weights, quantised).total <= usable:
            fixes.append("quantise the KV cache: -ctk q8_0 -ctv q8_0 (some loss of accuracy)")
    ub = work.ubatch
    while ub > 256:
        ub //= 2
        smaller = replace(work, ubatch=ub, batch=min(work.batch, max(ub, work.batch)))
        if estimate(arch, weights, smaller).total <= usable:
            fixes.append(f"a smaller micro-batch: -ub {ub} (slower prompt processing)")
            break
    largest = largest_context(arch, weights, work, usable)
    if largest is not None and largest < (work.ctx or arch.context_length):
        fixes.append(f"a smaller context: -c {largest} or less")
    if not fixes:
        fixes.append("the weights alone do not leave room: choose a smaller quantisation of the model")
    return Fit(base, usable, tuple(fixes))


@dataclass(frozen=True)
class Reported:
    """What llama.cpp logs while loading: its own sizes, to hold the estimate against (MiB)."""

    weights: float
    kv: float
    kv_swa: float
    compute: float
    cells: int
    swa_cells: int


_KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells")
_SWA_MARK = re.compile(r"creating +(non-SWA|SWA) KV cache")
_COMPUTE = re.compile(r"(\S+) compute buffer size = +([\d.]+) MiB")
_MODEL_BUF = re.compile(r"(\S+) model buffer size = +([\d.]+) MiB")


def parse_load_log(lines: Iterable[str]) -> Reported:
    weights = kv = kv_swa = compute = 0.0
    cells_full = cells_swa = 0
    swa_next = False
    for line in lines:
        if mark := _SWA_MARK.search(line):
            swa_next = mark.group(1) == "SWA"
        elif found := _KV_LINE.search(line):
            if swa_next:
                kv_swa, cells_swa = float(found.group(1)), int(found.group(2))
            else:
                kv, cells_full = float(found.group(1)), int(found.group(2))
        elif found := _COMPUTE.search(line):
            compute += float(found.group(2))
        elif found := _MODEL_BUF.search(line):
            weights += float(found.group(2))
    return Reported(weights, kv, kv_swa, compute, cells_full, cells_swa)
