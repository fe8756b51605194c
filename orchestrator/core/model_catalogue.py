"""The published GGUFs of Step-3.5-Flash this tool knows, as data, and which of them fits each target's
profiles (pure: the memory plan's estimate for the published architecture at each file's size).

Each value says where it was seen. None of the hub's pages can be reached from the machine this was
written on; the values come from stored copies of the repositories' pages and model cards (named beside
each). What is marked unchecked is checked by `orchestrator model pull`, which compares every file with
the hub's listing (size, sha256) and reads the GGUF (split parts, MTP heads) before it registers it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.budget import budget
from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.memory import GIB, estimate, largest_context
from orchestrator.core.memory_plan import profile_server
from orchestrator.core.models import KNOWN_MODELS, step35_published

UNCHECKED = "not checked here: read from the files when pulled"

_STEPFUN_CARD = (
    "the publisher's deployment README (seed) and its hub page stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S"
)
_AESSEDAI_CARD = (
    "the model card of AesSedai/Step-3.5-Flash-GGUF (a stored copy of its README's blame page, lines from "
    "commits 2e31c87 and c7bb172; its update of 6/3/2026 added the MTP heads as Q8_0 to every quantisation)"
)


@dataclass(frozen=True)
class PublishedGguf:
    """One published quantisation of Step-3.5-Flash."""

    repo: str
    quant: str
    # The tensors' size as the publisher gives it (GiB), and where that was seen.
    size_gib: float
    size_seen: str
    # How many files it is split into (None: unchecked), whether it carries the MTP heads our speculation
    # uses (None: unchecked), and where that was seen.
    parts: int | None
    mtp: bool | None
    mtp_seen: str
    # Perplexity and KL divergence as the publisher measured them (its own text and reference), if given.
    published_quality: str | None = None
    note: str | None = None

    @property
    def pull(self) -> str:
        """What `orchestrator model pull` takes to fetch it."""
        return self.repo if self.repo == KNOWN_MODELS["step-3.5-flash"].repo else f"{self.repo}:{self.quant}"


def _aessedai(quant: str, size: float, ppl: str, kld: str) -> PublishedGguf:
    return PublishedGguf(
        repo="AesSedai/Step-3.5-Flash-GGUF",
        quant=quant,
        size_gib=size,
        size_seen=_AESSEDAI_CARD,
        parts=None,
        mtp=True,
        mtp_seen=_AESSEDAI_CARD,
        published_quality=f"PPL {ppl}, KLD {kld} (the card's own text and BF16 reference)",
        note="a mixture: attention and shared tensors kept larger, the experts quantised down (the card's table)",
    )


PUBLISHED: tuple[PublishedGguf, ...] = (
    PublishedGguf(
        repo="stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
        quant="Q4_K_S",
        size_gib=103.8,
        size_seen="the catalogue's step-3.5-flash (111.5 GB of GGUF, 103.8 GiB of tensors): " + _STEPFUN_CARD,
        parts=1,
        mtp=False,
        mtp_seen="the publisher's README lists MTP as still to do; its file name step3.5_flash_Q4_K_S.gguf is "
        "one file",
        note="the publisher's own, calibrated (the hub page is tagged imatrix); Apache-2.0",
    ),
    _aessedai("Q8_0", 197.43, "2.419187", "0.005594"),
    _aessedai("Q5_K_M", 138.83, "2.431812", "0.015249"),
    _aessedai("Q4_K_M", 116.22, "2.477162", "0.040282"),
    _aessedai("IQ4_XS", 91.31, "2.685042", "0.127994"),
    _aessedai("IQ3_S", 70.89, "3.313628", "0.355228"),
    _aessedai("IQ2_S", 64.43, "3.772340", "0.488752"),
)


@dataclass(frozen=True)
class Verdict:
    """One file on one target's profile: fits as the profile is, fits once the KV cache is q8_0, or not;
    and the largest context it fits at (a multiple of 4096, at most the model's 256K)."""

    target: str
    profile: str
    context: int
    fits: str
    needs_gib: float
    usable_gib: float | None
    largest_context: int | None

    def short(self) -> str:
        largest = f"; largest context {self.largest_context // 1024}K" if self.largest_context else ""
        return f"{self.profile} ({self.context // 1024}K): {self.fits}{largest}"


def verdict(file: PublishedGguf, target: Target, profile: Profile, facts: HostFacts) -> Verdict:
    arch = step35_published()
    weights = int(file.size_gib * GIB)
    usable = budget(target, profile, facts).usable
    work = profile_server(profile, min(profile.ctx, arch.context_length))
    needs = estimate(arch, weights, work).total
    fits = "unknown"
    cache = work.cache_k
    if usable is not None:
        if needs <= usable:
            fits = "fits"
        elif (
            cache != "q8_0"
            and estimate(arch, weights, profile_server(profile, work.ctx, cache="q8_0")).total <= usable
        ):
            fits, cache = "fits with q8_0 KV", "q8_0"
        else:
            fits = "does not fit"
    whole = profile_server(profile, arch.context_length, cache=cache)
    largest = largest_context(arch, weights, whole, usable) if usable is not None else None
    return Verdict(
        target.name,
        profile.name,
        work.ctx,
        fits,
        round(needs / GIB, 1),
        round(usable / GIB, 1) if usable is not None else None,
        largest,
    )


def verdicts(file: PublishedGguf, targets: Sequence[Target], facts: HostFacts) -> tuple[Verdict, ...]:
    """Every profile of the targets (profiles made for RPC workers are judged per machine elsewhere:
    `orchestrator plan --profile pair`)."""
    return tuple(
        verdict(file, target, profile, facts)
        for target in targets
        for profile in target.profiles
        if profile.rpc_workers == 0
    )


def serving_targets(targets: Sequence[Target]) -> list[Target]:
    """The targets made to serve Step-3.5-Flash."""
    return [t for t in targets if t.default_model == "step-3.5-flash"]


def published(repo: str, quant: str | None) -> PublishedGguf | None:
    """The catalogue's entry for what `model pull REPO[:QUANT]` fetches, if it has one."""
    wanted = (repo.lower(), quant.lower() if quant else None)
    for file in PUBLISHED:
        if (file.repo.lower(), file.quant.lower() if file.pull != file.repo else None) == wanted:
            return file
    return None


def differences(file: PublishedGguf, parts: int, tensor_bytes: int, mtp: bool) -> list[str]:
    """Where the pulled files say otherwise than the catalogue (the files are right)."""
    found = []
    if abs(tensor_bytes / GIB - file.size_gib) > 0.02 * file.size_gib:
        found.append(
            f"size: the catalogue says {file.size_gib:.2f} GiB of tensors, the files hold {tensor_bytes / GIB:.2f}"
        )
    if file.parts is not None and parts != file.parts:
        found.append(f"parts: the catalogue says {file.parts}, the files are {parts}")
    if file.mtp is not None and mtp != file.mtp:
        found.append(
            f"MTP heads: the catalogue says {'yes' if file.mtp else 'no'}, the files {'have' if mtp else 'have none'}"
        )
    return found
