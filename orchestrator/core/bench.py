"""llama-batched-bench results: parsing (jsonl and markdown), completeness, records, comparison with the
publisher's tables, and the markdown report. Pure: the result files and the plot are
orchestrator.app.results."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.core.models import KNOWN_MODELS, ModelSpec
from orchestrator.core.reference import REFERENCES, BenchRow, ReferenceTable

_NAN = re.compile(r":\s*-?(nan|inf)\b", re.IGNORECASE)
_JSON_KEYS = ("pp", "tg", "pl", "n_kv", "t_pp", "speed_pp", "t_tg", "speed_tg", "t", "speed")


def parse_jsonl(text: str) -> list[BenchRow]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and '"speed_pp"' in line):
            continue
        # printf writes nan for a speed over zero tokens (the PP=0 row); the publisher's tables show 0.00.
        line = _NAN.sub(": 0.0", line)
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue  # a row cut off at exit is a missing row, found by completeness
        rows.append(
            BenchRow(
                *(type_(data[k]) for k, type_ in zip(_JSON_KEYS, (int,) * 4 + (float,) * 6, strict=True))
            )
        )
    return rows


def parse_markdown(text: str) -> list[BenchRow]:
    """The table llama-batched-bench prints without --output-format jsonl (and the publisher's README)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 10 or not cells[0].isdigit():
            continue
        try:
            numbers = [float(c) for c in cells[4:]]
        except ValueError:
            continue
        rows.append(BenchRow(*(int(c) for c in cells[:4]), *(0.0 if math.isnan(n) else n for n in numbers)))
    return rows


def parse_output(text: str) -> list[BenchRow]:
    return parse_jsonl(text) or parse_markdown(text)


def padded_context(ctx: int) -> int:
    # llama.cpp rounds the context up to a multiple of 256 before it sizes the KV cache.
    return math.ceil(ctx / 256) * 256


def expected_rows(
    ctx: int, npp: Sequence[int], ntg: Sequence[int], npl: Sequence[int]
) -> list[tuple[int, int, int]]:
    """The rows llama-batched-bench will print, in its order: combinations that fit the context."""
    n_kv_max = padded_context(ctx)
    return [(pp, tg, pl) for pp in npp for tg in ntg for pl in npl if pl * (pp + tg) <= n_kv_max]


def missing_rows(
    expected: Sequence[tuple[int, int, int]], rows: Iterable[BenchRow]
) -> list[tuple[int, int, int]]:
    got = {(r.pp, r.tg, r.pl) for r in rows}
    return [key for key in expected if key not in got]


def catalogue_name(model: ModelSpec) -> str | None:
    """The model catalogue's name of the model a plan serves (None: a file the catalogue does not know)."""
    return next((name for name, ref in KNOWN_MODELS.items() if ref.alias == model.alias), None)


def model_key(model: Mapping[str, Any]) -> str:
    """Which model a record ran: the model catalogue's name (recorded with each run), else, in records
    made before it was, the alias the server was given. Records of two keys are never compared, averaged
    or shown against each other's published tables."""
    return str(model.get("name") or model.get("alias") or "unknown model")


def reference_for(model: Mapping[str, Any], reference: str | None) -> ReferenceTable | None:
    """The published table a run of this model is compared with: the one its set names, if that table
    measured the same model; else none (a Step-3.7 run is never held against the Step-3.5 tables)."""
    table = REFERENCES.get(reference) if reference else None
    return table if table is not None and table.model == model_key(model) else None


@dataclass(frozen=True)
class Comparison:
    pp: int
    tg: int
    pl: int
    speed_pp: float
    published_pp: float
    speed_tg: float
    published_tg: float

    @property
    def ratio_pp(self) -> float | None:
        return self.speed_pp / self.published_pp if self.published_pp else None

    @property
    def ratio_tg(self) -> float | None:
        return self.speed_tg / self.published_tg if self.published_tg else None


def compare(rows: Iterable[BenchRow], reference: str) -> list[Comparison]:
    published = {(r.pp, r.tg, r.pl): r for r in REFERENCES[reference].rows}
    return [
        Comparison(r.pp, r.tg, r.pl, r.speed_pp, published[k].speed_pp, r.speed_tg, published[k].speed_tg)
        for r in rows
        if (k := (r.pp, r.tg, r.pl)) in published
    ]


@dataclass(frozen=True)
class BenchRecord:
    """One run of one parameter set, with what it ran on (after ramalama's benchmark records)."""

    run_id: str
    started: float
    finished: float
    complete: bool
    target: str
    profile: str
    bench: str
    reference: str | None
    model: dict[str, Any]
    build: dict[str, Any]
    runtime: dict[str, Any]
    host: dict[str, Any]
    rows: list[BenchRow]
    missing: list[tuple[int, int, int]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(line: str) -> BenchRecord:
        data = json.loads(line)
        data["rows"] = [BenchRow(**row) for row in data["rows"]]
        data["missing"] = [tuple(m) for m in data.get("missing", [])]
        return BenchRecord(**data)


def latest_per_set(records: Sequence[BenchRecord]) -> list[BenchRecord]:
    """The newest record of each set per model and file: runs of two models (or two files of one) stay
    apart, neither replaces the other."""
    latest: dict[tuple[str, str, str, str, str], BenchRecord] = {}
    for record in sorted(records, key=lambda r: r.finished):
        key = (
            record.target,
            record.profile,
            record.bench,
            model_key(record.model),
            str(record.model.get("file")),
        )
        latest[key] = record
    return list(latest.values())


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def markdown_report(records: Sequence[BenchRecord]) -> str:
    lines = ["# llama-batched-bench results", ""]
    for record in records:
        state = "complete" if record.complete else f"INCOMPLETE (missing {record.missing or 'rows'})"
        lines += [
            f"## {record.target} / {record.profile} / {record.bench}: {model_key(record.model)} "
            f"({record.model.get('file')}, {state})",
            "",
            f"image `{record.build.get('image')}`, source {record.build.get('source')}, run {record.run_id}",
            "",
            "| PP | TG | B | N_KV | S_PP t/s | S_TG t/s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.pp} | {r.tg} | {r.pl} | {r.n_kv} | {r.speed_pp:.2f} | {r.speed_tg:.2f} |"
            for r in record.rows
        ]
        table = reference_for(record.model, record.reference)
        if table is not None:
            lines += [
                "",
                f"Against the publisher's `{table.key}` table ({table.model}):",
                "",
                "| PP | S_PP | published | ratio | S_TG | published | ratio |",
                "|---:|---:|---:|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {c.pp} | {c.speed_pp:.2f} | {c.published_pp:.2f} | {_ratio(c.ratio_pp)} | "
                f"{c.speed_tg:.2f} | {c.published_tg:.2f} | {_ratio(c.ratio_tg)} |"
                for c in compare(record.rows, table.key)
            ]
        elif record.reference:
            lines += ["", f"Not compared with `{record.reference}`: that table measured another model."]
        lines.append("")
    return "\n".join(lines)
