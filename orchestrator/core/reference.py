"""The publisher's published llama-batched-bench tables (Step-3.5-Flash Q4_K_S), kept as data, and the
community's serving figures for Step-3.7-Flash, kept apart and shown as such.

Columns as llama-batched-bench prints them: PP, TG, B, N_KV, T_PP s, S_PP t/s, T_TG s, S_TG t/s, T s, S t/s.

Every table names the model it measured (the model catalogue's name); a run is compared with a table of its
own model only (core.bench.reference_for), so a Step-3.7 run never meets the Step-3.5 tables. StepFun
publishes no llama.cpp tables for Step-3.7-Flash that a search from here found (its pages, the model's
GGUF listings and llama.cpp's threads were searched in December 2026).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from orchestrator.core.catalogue import CATALOGUE, Target
from orchestrator.errors import OrchestratorError


@dataclass(frozen=True)
class BenchRow:
    pp: int
    tg: int
    pl: int
    n_kv: int
    t_pp: float
    speed_pp: float
    t_tg: float
    speed_tg: float
    t: float
    speed: float


@dataclass(frozen=True)
class ReferenceTable:
    key: str
    target: str
    model: str
    rows: tuple[BenchRow, ...]


def _rows(*rows: tuple[float, ...]) -> tuple[BenchRow, ...]:
    return tuple(
        BenchRow(int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows
    )


_MODEL = "step-3.5-flash"
# The model catalogue's name of Step-3.7-Flash (what `--model step-3.7-flash` serves).
STEP37 = "step-3.7-flash"

REFERENCES: Mapping[str, ReferenceTable] = MappingProxyType(
    {
        "mac-studio-256k": ReferenceTable(
            key="mac-studio-256k",
            target="mac-studio",
            model=_MODEL,
            rows=_rows(
                (0, 128, 1, 128, 0.000, 0.00, 2.657, 48.18, 2.657, 48.18),
                (2048, 128, 1, 2176, 5.040, 406.35, 2.785, 45.96, 7.825, 278.08),
                (8192, 128, 1, 8320, 20.923, 391.52, 2.916, 43.90, 23.839, 349.01),
                (16384, 128, 1, 16512, 43.982, 372.52, 3.102, 41.27, 47.083, 350.70),
                (32768, 128, 1, 32896, 97.454, 336.24, 3.349, 38.22, 100.803, 326.34),
                (65536, 128, 1, 65664, 239.381, 273.77, 4.060, 31.52, 243.441, 269.73),
                (262144, 128, 1, 262272, 2193.455, 119.51, 14.409, 8.88, 2207.864, 118.79),
            ),
        ),
        "dgx-spark-256k": ReferenceTable(
            key="dgx-spark-256k",
            target="dgx-spark",
            model=_MODEL,
            rows=_rows(
                (0, 128, 1, 128, 0.000, 0.00, 6.468, 19.79, 6.468, 19.79),
                (2048, 128, 1, 2176, 5.222, 392.17, 6.315, 20.27, 11.538, 188.60),
                (8192, 128, 1, 8320, 15.341, 533.99, 6.321, 20.25, 21.662, 384.08),
                (16384, 128, 1, 16512, 31.008, 528.39, 6.652, 19.24, 37.659, 438.46),
                (32768, 128, 1, 32896, 68.606, 477.63, 7.210, 17.75, 75.816, 433.89),
                (65536, 128, 1, 65664, 167.820, 390.51, 8.303, 15.42, 176.122, 372.83),
                (262144, 128, 1, 262272, 1206.853, 217.21, 15.265, 8.39, 1222.118, 214.60),
            ),
        ),
        "ryzen-ai-max-64k": ReferenceTable(
            key="ryzen-ai-max-64k",
            target="ryzen-ai-max",
            model=_MODEL,
            rows=_rows(
                (0, 128, 1, 128, 0.000, 0.00, 37.337, 3.43, 37.337, 3.43),
                (2048, 128, 1, 2176, 10.346, 197.94, 37.620, 3.40, 47.967, 45.36),
                (8192, 128, 1, 8320, 47.678, 171.82, 38.127, 3.36, 85.805, 96.96),
                (16384, 128, 1, 16512, 124.570, 131.52, 38.773, 3.30, 164.343, 101.09),
                (32768, 128, 1, 32896, 395.684, 82.81, 40.170, 3.19, 435.854, 75.47),
                (65536, 128, 1, 65664, 1520.696, 43.10, 43.014, 2.98, 1563.710, 41.99),
            ),
        ),
    }
)


@dataclass(frozen=True)
class CommunityFigures:
    """Decode speeds someone other than the publisher reported for a model on a target, per speculative
    setting (off, mtp:N), each a tuple of the runs reported; shown beside a serving benchmark of the same
    model on the same target, labelled with who measured what and where it was posted."""

    model: str
    target: str
    measured: str
    source: str
    decode: Mapping[str, tuple[float, ...]]


COMMUNITY_SERVING: tuple[CommunityFigures, ...] = (
    CommunityFigures(
        model=STEP37,
        target="dgx-spark",
        # Seen in ggml-org/llama.cpp PR #23274 ("StepFun 3.5 MTP"), comment by coder543 on 2026-06-03: a
        # table of two runs (A and B) per mode, with --spec-draft-p-min 0.6, before the three-head MTP
        # (PR #24340) was merged; not measured here.
        measured="AesSedai's Step-3.7-Flash IQ4 GGUF, llama-server, draft-p-min 0.6, two runs (A, B)",
        source="llama.cpp PR #23274, comment by coder543, 2026-06-03",
        decode=MappingProxyType(
            {
                "off": (23.68, 23.74),
                "mtp:1": (31.42, 31.97),
                "mtp:2": (32.37, 36.56),
                "mtp:3": (27.87, 32.46),
            }
        ),
    ),
)


def community_figures(model: str, target: str) -> CommunityFigures | None:
    """The community's figures for this model on this target, if any were kept."""
    return next((c for c in COMMUNITY_SERVING if c.model == model and c.target == target), None)


def check_references(
    catalogue: Mapping[str, Target] = CATALOGUE, references: Mapping[str, ReferenceTable] = REFERENCES
) -> None:
    """Every profile bench set that names a table names one that exists, for its own target."""
    for target in catalogue.values():
        for profile in target.profiles:
            for bench in profile.benches:
                if bench.reference is None:
                    continue
                table = references.get(bench.reference)
                if table is None or table.target != target.name:
                    whose = "no table" if table is None else f"target {table.target}'s table"
                    raise OrchestratorError(
                        f"profile {profile.name} of target {target.name} compares with reference "
                        f"{bench.reference!r}, {whose}; name a table of its own target"
                    )
