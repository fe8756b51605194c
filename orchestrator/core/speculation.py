"""Speculative decoding, pure: the `speculative` setting (off, mtp[:N], an n-gram type), the MTP heads a
GGUF carries, and what the server does with both.

Upstream llama.cpp (pinned commit) drafts with a model's own multi-token-prediction ("nextn") blocks
(`--spec-type draft-mtp`). A step35 GGUF comes in three shapes its loader accepts: the trunk with the heads
(combined), the trunk with the heads declared but absent (trunk-only; the heads then come from an MTP-only
sidecar, `mtp-<name>.gguf` as upstream's converter writes it), and the sidecar itself. n-gram drafting
needs no weights at all. Speculation never decides whether a server starts: a model that cannot draft
is served without it, with one line that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import UsageError

# llama-server's --spec-type names for drafting without extra weights, and the most tokens each drafts
# per step at its defaults (common.h at the pinned commit: ngram-mod n_max 64, the map types size_m 48,
# the cache 8); the server sizes its output buffer from that.
NGRAM_DRAFT_MAX: dict[str, int] = {
    "ngram-simple": 48,
    "ngram-map-k": 48,
    "ngram-map-k4v": 48,
    "ngram-mod": 64,
    "ngram-cache": 8,
}
# A draft longer than this costs more verification than it can win back on any reported setup.
MAX_MTP_DRAFT = 8
SIDECAR_PREFIX = "mtp-"

Kind = Literal["off", "mtp", "ngram"]
Layout = Literal["none", "combined", "trunk-only", "mtp-only", "partial"]


@dataclass(frozen=True)
class Speculative:
    """The setting as asked for: off, mtp (one draft token per head), mtp:N, or an n-gram type."""

    kind: Kind
    draft_n: int | None = None
    ngram: str | None = None

    def __str__(self) -> str:
        if self.kind == "mtp":
            return "mtp" if self.draft_n is None else f"mtp:{self.draft_n}"
        return self.ngram if self.kind == "ngram" and self.ngram else "off"


OFF = Speculative("off")


def parse_speculative(value: object) -> Speculative:
    """Parse the setting; ValueError with the accepted forms on anything else."""
    text = str(value).strip().lower()
    forms = f"off, mtp, mtp:N (N draft tokens, 1 to {MAX_MTP_DRAFT}) or one of {', '.join(NGRAM_DRAFT_MAX)}"
    if text in {"off", "none", "false", "no"}:
        return OFF
    if text == "mtp":
        return Speculative("mtp")
    if text.startswith("mtp:"):
        count = text.removeprefix("mtp:")
        if not count.isdigit() or not 1 <= int(count) <= MAX_MTP_DRAFT:
            raise ValueError(f"the number of MTP draft tokens must be 1 to {MAX_MTP_DRAFT}, not {count!r}")
        return Speculative("mtp", draft_n=int(count))
    if text in NGRAM_DRAFT_MAX:
        return Speculative("ngram", ngram=text)
    raise ValueError(f"unknown speculative decoding {text!r}; expected {forms}")


@dataclass(frozen=True)
class MtpHeads:
    """What a GGUF says and holds of a model's MTP blocks."""

    declared: int
    # Heads whose blocks are in this file (blk.N.nextn.eh_proj present for N >= the trunk's layers).
    present: int
    # Whether the file holds the trunk (the main model's layers), not only heads.
    trunk: bool
    # Tensor bytes of the heads' blocks in this file (skipped at load when not drafting with them).
    bytes: int = 0

    @property
    def layout(self) -> Layout:
        if self.declared == 0:
            return "none"
        if self.present == self.declared:
            return "combined" if self.trunk else "mtp-only"
        if self.present == 0 and self.trunk:
            return "trunk-only"
        return "partial"

    def describe(self) -> str:
        n = self.declared
        return {
            "none": "MTP heads: none",
            "combined": f"MTP heads: {n}, in the file",
            "trunk-only": f"MTP heads: {n} declared, not in the file: pass --draft-model or pull the sidecar "
            f"({SIDECAR_PREFIX}*.gguf)",
            "mtp-only": f"MTP heads: {n}, and nothing else: an MTP sidecar, not a model to serve",
            "partial": f"MTP heads: {n} declared, {self.present} in the file: the file is incomplete",
        }[self.layout]


@dataclass(frozen=True)
class Sidecar:
    """An MTP-only GGUF that supplies a trunk-only model's heads."""

    path: Path
    arch: str
    n_vocab: int
    n_embd: int
    heads: MtpHeads
    weights_bytes: int
    # The Step model its name says it is made for ("3.5", "3.7"; core.models.family_of), if it says.
    family: str | None = None


@dataclass(frozen=True)
class Speculation:
    """What the server does: the requested setting resolved against the model."""

    requested: Speculative
    spec_type: str | None = None
    # Most tokens drafted per step (the server's --spec-draft-n-max, or the n-gram type's default).
    draft_n: int = 0
    sidecar: Path | None = None
    # MTP heads the draft context runs (their KV cache), and the weights loaded for them.
    heads: int = 0
    heads_bytes: int = 0
    # Why the request was not carried out (one line), when it was not.
    fallback: str | None = None

    @property
    def active(self) -> bool:
        return self.spec_type is not None

    def describe(self) -> str:
        if self.spec_type == "draft-mtp":
            where = f" from {self.sidecar.name}" if self.sidecar else ""
            return f"MTP, {self.draft_n} draft token{'s' if self.draft_n > 1 else ''}{where}"
        if self.spec_type:
            return f"n-gram ({self.spec_type})"
        return self.fallback or "off"


def resolve(
    requested: Speculative,
    model_name: str,
    arch: str | None,
    n_vocab: int | None,
    heads: MtpHeads | None,
    sidecar: Sidecar | None,
    family: str | None = None,
) -> Speculation:
    """The speculation a server runs for this model (family: the Step model its name says it is, "3.5" or
    "3.7"). Bad combinations (a sidecar of another model, more draft tokens than a chained model has heads)
    raise UsageError; a model that cannot draft falls back to
    off with the reason."""
    if requested.kind == "off":
        return Speculation(requested)
    if requested.ngram is not None:  # parse_speculative sets it for the n-gram kind alone
        return Speculation(requested, requested.ngram, NGRAM_DRAFT_MAX[requested.ngram])
    if heads is None:
        return Speculation(
            requested,
            fallback=f"{model_name}: its MTP heads are known once its file is read; speculative decoding is off until then",
        )
    if sidecar is not None:
        _check_sidecar(sidecar, model_name, arch, n_vocab, family)
    layout = heads.layout
    if layout in ("none", "partial"):
        why = "has no MTP heads" if layout == "none" else heads.describe().removeprefix("MTP heads: ")
        return Speculation(requested, fallback=f"{model_name} {why}; speculative decoding is off")
    if layout == "trunk-only" and sidecar is None:
        return Speculation(
            requested,
            fallback=f"{model_name} declares {heads.declared} MTP heads that are not in the file; "
            "pass --draft-model with its MTP file, or pull the model again (`orchestrator model pull` brings "
            "the MTP file its repository publishes); speculative decoding is off",
        )
    draft_n = requested.draft_n or heads.declared
    # step35 chains one trained head per draft step: it drafts at most as many tokens as it has heads.
    if heads.declared > 1 and draft_n > heads.declared:
        raise UsageError(
            f"--spec mtp:{draft_n}: {model_name} has {heads.declared} MTP heads and drafts one token with "
            f"each; use mtp:1 to mtp:{heads.declared}"
        )
    if layout == "trunk-only" and sidecar is not None:  # without one it fell back above
        return Speculation(
            requested, "draft-mtp", draft_n, sidecar.path, heads.declared, sidecar.weights_bytes
        )
    return Speculation(requested, "draft-mtp", draft_n, None, heads.declared, heads.bytes)


def _check_sidecar(
    sidecar: Sidecar, model_name: str, arch: str | None, n_vocab: int | None, family: str | None
) -> None:
    name = sidecar.path.name
    if sidecar.heads.layout != "mtp-only":
        raise UsageError(
            f"--draft-model {name} is not an MTP sidecar ({sidecar.heads.describe()}); give the "
            f"{SIDECAR_PREFIX}*.gguf file made for {model_name}"
        )
    if arch is not None and sidecar.arch != arch:
        raise UsageError(
            f"--draft-model {name} is a {sidecar.arch!r} sidecar but {model_name} is {arch!r}; give the "
            "sidecar made for this model"
        )
    if n_vocab is not None and sidecar.n_vocab != n_vocab:
        raise UsageError(
            f"--draft-model {name} has a vocabulary of {sidecar.n_vocab} tokens but {model_name} has "
            f"{n_vocab}; give the sidecar made for this model"
        )
    # Step-3.5 and Step-3.7 MTP files are the same architecture, vocabulary and width: only their names
    # tell them apart (the published files' general.name could not be read from here).
    if family is not None and sidecar.family is not None and sidecar.family != family:
        raise UsageError(
            f"MTP file {name} is made for Step-{sidecar.family}-Flash but {model_name} is Step-{family}-Flash; "
            "move it out of the model's folder or give the MTP file of this model with --draft-model"
        )


def server_args(
    speculation: Speculation, cache_k: str | None, cache_v: str | None, sidecar_arg: str | None
) -> list[str]:
    """llama-server's flags for it; the draft context's KV cache follows the main one's types."""
    if speculation.spec_type is None:
        return []
    args = ["--spec-type", speculation.spec_type]
    if speculation.spec_type == "draft-mtp":
        args += ["--spec-draft-n-max", str(speculation.draft_n)]
        if sidecar_arg:
            args += ["--spec-draft-model", sidecar_arg]
        args += (["-ctkd", cache_k] if cache_k else []) + (["-ctvd", cache_v] if cache_v else [])
    return args
