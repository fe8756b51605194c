"""The serving benchmark, pure: a fixed prompt set sent at temperature 0 to llama-server, per-request
figures read from the server's own `timings`, records in the same JSONL store as the batched-bench
records, and the side-by-side summary of speculation off and each setting measured against it (a sweep:
off, then mtp:1, mtp:2, mtp:3 for a model with three MTP heads, so an owner picks from numbers).

Speculative decoding only shows through the server (llama-batched-bench cannot draft), and under greedy
sampling it is lossless: the text with speculation on must be the text with it off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from orchestrator.core.bench import model_key
from orchestrator.core.speculation import Speculation, Speculative, parse_speculative

SERVE_KIND = "serve"


@dataclass(frozen=True)
class Prompt:
    name: str
    messages: tuple[Mapping[str, str], ...]
    max_tokens: int


_CODE = """def total(xs):
    t = 0
    for x in xs:
        if x > 0:
            t = t + x
    return t
"""


def _long_document(facts: int) -> str:
    lines = [
        f"Record {i}: the depot in district {i} holds {(i * 37) % 91 + 10} crates of "
        f"{('copper', 'timber', 'grain', 'salt')[i % 4]}."
        for i in range(1, facts + 1)
    ]
    return "\n".join(lines)


def prompt_set(ctx: int) -> tuple[Prompt, ...]:
    """Short chat, a code edit (output that repeats its input, where n-gram drafting shines) and a
    question over a long document sized to fit a quarter of the context (each of 4 slots holds its own
    quarter) with the answer and drafts, at a pessimistic 120 tokens a line (a byte-level vocabulary
    spends ~70; a real one ~25)."""
    facts = max(4, min(400, ctx // (4 * 120)))
    asked = facts // 2
    return (
        Prompt(
            "short-chat",
            ({"role": "user", "content": "Why is the sky blue? Answer in two sentences."},),
            96,
        ),
        Prompt(
            "code-edit",
            (
                {
                    "role": "user",
                    "content": "Rename the function to sum_positive and the variable t to running, keep "
                    f"everything else, and reply with the code only:\n\n{_CODE}",
                },
            ),
            128,
        ),
        Prompt(
            "long-context",
            (
                {
                    "role": "user",
                    "content": f"{_long_document(facts)}\n\nHow many crates does the depot in district "
                    f"{asked} hold? Answer with the number and the goods.",
                },
            ),
            48,
        ),
    )


def request_body(prompt: Prompt, *, margins: bool = False) -> dict[str, Any]:
    """The request for a prompt; with margins, the two likeliest tokens at each step come back too (asked
    once per prompt after the timed rounds, so the figures are not measured with that work)."""
    return {
        "messages": [dict(m) for m in prompt.messages],
        "temperature": 0,
        "top_k": 1,
        "seed": 0,
        "max_tokens": prompt.max_tokens,
        "stream": False,
        **({"logprobs": True, "top_logprobs": 2} if margins else {}),
    }


# Greedy decoding with drafts verified in a batch is lossless in exact arithmetic only: a batch runs other
# kernels than one token at a time, so where the two likeliest tokens are this close the choice can flip.
# Seen here, gemma-3-270m's short chat under ngram-mod: identical on one machine, flipped 0.072 apart on
# another, and 0.21 apart on a Xeon with AMX (twice; the cpu image puts weights in AMX buffers there,
# its kernels differ again). Wider gaps that flip are failures (SmolLM2 with ngram-mod at the pin: 0.36).
NEAR_TIE = 0.25


def token_margins(response: Mapping[str, Any]) -> list[tuple[int, float]]:
    """For each generated token: where it ends in the text (characters) and how far the chosen token's
    log-probability is above the runner-up's."""
    choices = response.get("choices") or [{}]
    content = ((choices[0].get("logprobs") or {}).get("content")) or []
    margins, end = [], 0
    for token in content:
        end += len(str(token.get("token", "")))
        tops = sorted((float(t.get("logprob", 0.0)) for t in token.get("top_logprobs") or []), reverse=True)
        margins.append((end, tops[0] - tops[1] if len(tops) > 1 else float("inf")))
    return margins


@dataclass(frozen=True)
class ServeSample:
    """One request's figures, from the response's `timings` (time to first token = prompt time)."""

    prompt: str
    clients: int
    prompt_tokens: int
    prompt_per_second: float
    decode_tokens: int
    decode_per_second: float
    ttft_ms: float
    draft_n: int
    draft_accepted: int
    text: str
    wall_s: float


def sample_from_response(
    prompt: str, clients: int, response: Mapping[str, Any], wall_s: float
) -> ServeSample:
    timings = response.get("timings") or {}
    choices = response.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "")
    return ServeSample(
        prompt=prompt,
        clients=clients,
        prompt_tokens=int(timings.get("prompt_n", 0)),
        prompt_per_second=float(timings.get("prompt_per_second", 0.0)),
        decode_tokens=int(timings.get("predicted_n", 0)),
        decode_per_second=float(timings.get("predicted_per_second", 0.0)),
        ttft_ms=float(timings.get("prompt_ms", 0.0)),
        draft_n=int(timings.get("draft_n", 0)),
        draft_accepted=int(timings.get("draft_n_accepted", 0)),
        text=text,
        wall_s=wall_s,
    )


@dataclass(frozen=True)
class ServeRecord:
    """One server configuration measured with every prompt at every client count."""

    run_id: str
    # The same for the records one `bench serve` makes side by side (off, then on).
    comparison: str
    started: float
    finished: float
    target: str
    profile: str
    speculation: str
    model: dict[str, Any]
    build: dict[str, Any]
    runtime: dict[str, Any]
    host: dict[str, Any]
    samples: list[ServeSample]
    # Wall time of each round (all clients of one prompt), by "<prompt>@<clients>".
    rounds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    kind: str = SERVE_KIND
    # With speculation off: each prompt's token_margins, from one more request after the timed rounds.
    margins: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(line: str) -> ServeRecord:
        data = json.loads(line)
        data["samples"] = [ServeSample(**s) for s in data["samples"]]
        data["margins"] = {k: [(int(e), float(m)) for e, m in v] for k, v in data.get("margins", {}).items()}
        return ServeRecord(**data)


def record_kind(line: str) -> str:
    """Which record a line of the results store holds (batched-bench records predate the field)."""
    return str(json.loads(line).get("kind", "batched"))


@dataclass(frozen=True)
class ServeRow:
    """One client count: speculation off against on."""

    clients: int
    decode_off: float
    decode_on: float
    # Generated tokens per second of wall time over all clients together.
    aggregate_off: float
    aggregate_on: float
    ttft_off_ms: float
    ttft_on_ms: float
    drafted: int
    accepted: int
    identical: int
    compared: int

    @property
    def ratio(self) -> float | None:
        return self.decode_on / self.decode_off if self.decode_off else None

    @property
    def aggregate_ratio(self) -> float | None:
        return self.aggregate_on / self.aggregate_off if self.aggregate_off else None

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


def _aggregate(record: ServeRecord, clients: int) -> float:
    tokens = sum(s.decode_tokens for s in record.samples if s.clients == clients)
    wall = sum(t for key, t in record.rounds.items() if key.endswith(f"@{clients}"))
    return tokens / wall if wall else 0.0


def compare_serving(off: ServeRecord, on: ServeRecord) -> list[ServeRow]:
    rows = []
    for clients in sorted({s.clients for s in off.samples} | {s.clients for s in on.samples}):
        a = [s for s in off.samples if s.clients == clients]
        b = [s for s in on.samples if s.clients == clients]
        texts_off = {s.prompt: s.text for s in a}
        pairs = [(texts_off[s.prompt], s.text) for s in b if s.prompt in texts_off]
        rows.append(
            ServeRow(
                clients=clients,
                decode_off=fmean([s.decode_per_second for s in a]) if a else 0.0,
                decode_on=fmean([s.decode_per_second for s in b]) if b else 0.0,
                aggregate_off=_aggregate(off, clients),
                aggregate_on=_aggregate(on, clients),
                ttft_off_ms=fmean([s.ttft_ms for s in a]) if a else 0.0,
                ttft_on_ms=fmean([s.ttft_ms for s in b]) if b else 0.0,
                drafted=sum(s.draft_n for s in b),
                accepted=sum(s.draft_accepted for s in b),
                identical=sum(x == y for x, y in pairs),
                compared=len(pairs),
            )
        )
    return rows


@dataclass(frozen=True)
class Divergence:
    prompt: str
    # The first character where the texts part, and the margin of the token there with speculation off
    # (None when it was not measured).
    at: int
    margin: float | None

    @property
    def near_tie(self) -> bool:
        return self.margin is not None and self.margin < NEAR_TIE


def divergences(off: ServeRecord, on: ServeRecord, clients: int = 1) -> list[Divergence]:
    """Prompts whose greedy text differs with speculation on, at one client count, and where."""
    texts = {s.prompt: s.text for s in off.samples if s.clients == clients}
    found = []
    for sample in on.samples:
        before = texts.get(sample.prompt, sample.text)
        if sample.clients != clients or before == sample.text:
            continue
        at = next((i for i, (a, b) in enumerate(zip(before, sample.text, strict=False)) if a != b), None)
        at = min(len(before), len(sample.text)) if at is None else at
        token = next((m for end, m in off.margins.get(sample.prompt, []) if end > at), None)
        found.append(Divergence(sample.prompt, at, token))
    return found


def divergent(off: ServeRecord, on: ServeRecord, clients: int = 1) -> list[str]:
    """Prompts whose greedy text differs with speculation on beyond a near tie: a failure."""
    return [d.prompt for d in divergences(off, on, clients) if not d.near_tie]


def sweep_modes(
    speculation: Speculation, asked: Sequence[Speculative] = (), *, chosen: bool = False
) -> tuple[Speculative, ...]:
    """The settings a serving benchmark measures against speculation off: those asked for (--sweep), else
    the plan's own where the owner chose a draft count (chosen: --spec mtp:N), else every draft count of a
    model with several MTP heads (mtp:1 to mtp:N, one chained head per draft token), else the plan's own."""
    if asked:
        return tuple(dict.fromkeys(mode for mode in asked if mode.kind != "off"))
    if speculation.spec_type == "draft-mtp" and speculation.heads > 1 and not chosen:
        return tuple(Speculative("mtp", draft_n=n) for n in range(1, speculation.heads + 1))
    return (speculation.requested,)


def parse_sweep(value: str) -> tuple[Speculative, ...]:
    """--sweep: settings separated by commas (mtp:1,mtp:2,mtp:3 or ngram-mod); ValueError on a bad one."""
    modes = tuple(parse_speculative(part) for part in value.split(",") if part.strip())
    if not any(mode.kind != "off" for mode in modes):
        raise ValueError("name at least one setting to measure against off, e.g. mtp:1,mtp:2,mtp:3")
    return modes


def same_model(a: ServeRecord, b: ServeRecord) -> bool:
    """Whether two serving records measured the same model (core.bench.model_key): only those compare."""
    return model_key(a.model) == model_key(b.model)


def group_sweeps(records: Sequence[ServeRecord]) -> list[tuple[ServeRecord, tuple[ServeRecord, ...]]]:
    """The records one `bench serve` wrote (one comparison id), as (off, the settings against it), in the
    order they ran; a comparison without its off record, or with a record of another model, is left out."""
    by_comparison: dict[str, list[ServeRecord]] = {}
    for record in records:
        by_comparison.setdefault(record.comparison, []).append(record)
    sweeps = []
    for group in by_comparison.values():
        ordered = sorted(group, key=lambda r: r.started)
        off = next((r for r in ordered if r.speculation == "off"), None)
        ons = tuple(r for r in ordered if r is not off)
        if off is None or not ons or not all(same_model(off, on) for on in ons):
            continue
        sweeps.append((off, ons))
    return sweeps


def best_setting(off: ServeRecord, ons: Sequence[ServeRecord], clients: int = 1) -> ServeRecord | None:
    """The setting with the fastest decoding at one client among those that beat off and kept the greedy
    text (no divergence beyond a near tie); None when none does."""
    scored = []
    for on in ons:
        if on.error or divergent(off, on, clients):
            continue
        row = next((r for r in compare_serving(off, on) if r.clients == clients), None)
        if row is not None and row.ratio is not None and row.ratio > 1:
            scored.append((row.ratio, on))
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def serving_markdown(sweeps: Sequence[tuple[ServeRecord, Sequence[ServeRecord]]]) -> str:
    lines = ["# Serving benchmark: speculative decoding off against each setting", ""]
    for off, ons in sweeps:
        settings = ", ".join(on.speculation for on in ons)
        lines += [
            f"## {off.target} / {off.profile}: {model_label(off.model)}, off vs {settings}",
            "",
            "| setting | clients | decode off t/s | decode on t/s | ratio | aggregate ratio | acceptance "
            "| TTFT off/on ms | identical |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for on in ons:
            for row in compare_serving(off, on):
                lines.append(
                    f"| {on.speculation} | {row.clients} | {row.decode_off:.2f} | {row.decode_on:.2f} | "
                    f"{_fmt(row.ratio)} | {_fmt(row.aggregate_ratio)} | {_fmt(row.acceptance)} | "
                    f"{row.ttft_off_ms:.0f}/{row.ttft_on_ms:.0f} | {row.identical}/{row.compared} |"
                )
        best = best_setting(off, ons)
        lines += [
            "",
            f"Fastest at one client with the same greedy text: {best.speculation}."
            if best
            else "No setting decoded faster than off at one client with the same greedy text.",
            "",
        ]
    return "\n".join(lines)


def model_label(model: Mapping[str, Any]) -> str:
    """The model a record ran, as shown: its catalogue name (or alias) and file."""
    file = model.get("file")
    return f"{model_key(model)} ({file})" if file else model_key(model)


def _fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"
