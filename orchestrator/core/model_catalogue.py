"""The published GGUFs of Step-3.5-Flash and Step-3.7-Flash this tool knows, as data, and which of them fits each target's
profiles (pure: the memory plan's estimate for the published architecture at each file's size).

Each value says where it was seen. None of the hub's pages can be reached from the machine this was
written on; the values come from stored copies of the repositories' pages and model cards (named beside
each). What is marked unchecked is checked by `orchestrator model pull`, which compares every file with
the hub's listing (size, sha256) and reads the GGUF (split parts, MTP heads) before it registers it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from orchestrator.core.budget import budget
from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.memory import GIB, Workload, estimate, largest_context
from orchestrator.core.memory_plan import profile_server
from orchestrator.core.models import KNOWN_MODELS, step35_published
from orchestrator.core.speculation import Speculative

UNCHECKED = "not checked here: read from the files when pulled"

_STEPFUN_CARD = (
    "the publisher's deployment README (seed) and its hub page stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S"
)
_STEP35_PARTS = (
    "12 parts (step3p5_flash_Q4_K_S-00001-of-00012.gguf) in a third-party opencode config, '10+ parts' in "
    "another's model inventory; the publisher's README names one file (step3.5_flash_Q4_K_S.gguf): the hub "
    "listing itself not read from here"
)
_STEP37_LISTING = (
    "stepfun-ai/Step-3.7-Flash-GGUF's listing as a stored third-party copy gave it (facts of issue #37, not "
    "the live hub)"
)
_STEP37_PARTS = (
    "first part Step-3.7-flash-Q4_K_S-00001-of-00003.gguf in third-party launch scripts and a benchmark "
    "record (stored GitHub files); 111,499,087,872 B in all: " + _STEP37_LISTING
)
_STEP37_MTP = (
    "Step3.7-flash-mtp-Q8_0.gguf, 3,707,276,416 B, sha256 469a8166...fd57, at the repository's root "
    "(hub commit 0b69336d): a third-party MTP trial report (stored GitHub file) that read 3 dense heads, "
    "blocks 45-47, 55 tensors; the same size in " + _STEP37_LISTING
)
_STEP37_PROJECTOR = (
    "mmproj-step3.7-flash-f16.gguf at the repository's root (a third-party nix config fetches it from "
    "resolve/main/); 3.97 GB, 667 tensors, projector type step3vl in a port's notes; 3,972,828,768 B: "
    + _STEP37_LISTING
)
_STEP37_README = (
    "the publisher's model README (stepfun-ai/Step-3.7-Flash, section 6.4 llama.cpp, stored copy at commit "
    "4e02920): Q4_K_S 111.5 GB, IQ4_XS 104.99 GB, Q3_K_L 102.5 GB, the FP16 projector 3.97 GB, about 7 GB "
    "of runtime overhead, 120 GB of memory at least"
)
_UNSLOTH_37 = (
    "a third-party MTP trial report (stored GitHub file): UD-Q4_K_S, 4 parts "
    "(UD-Q4_K_S/Step-3.7-Flash-UD-Q4_K_S-00001-of-00004.gguf), 106.323 GiB as downloaded"
)
_AESSEDAI_CARD = (
    "the model card of AesSedai/Step-3.5-Flash-GGUF (a stored copy of its README's blame page, lines from "
    "commits 2e31c87 and c7bb172; its update of 6/3/2026 added the MTP heads as Q8_0 to every quantisation)"
)


@dataclass(frozen=True)
class PublishedGguf:
    """One published quantisation of Step-3.5-Flash or Step-3.7-Flash."""

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
    # The model it is a quantisation of (a KNOWN_MODELS name).
    model: str = "step-3.5-flash"
    parts_seen: str | None = None
    # The MTP heads as a separate file (its name and bytes) when they are not inside the model's files.
    mtp_file: str | None = None
    mtp_bytes: int | None = None
    # The vision projector published beside it (name and bytes; None: none, or unchecked: see its note).
    projector: str | None = None
    projector_bytes: int | None = None
    projector_seen: str | None = None

    @property
    def mtp_where(self) -> str:
        """inside, separate FILE, none, or unchecked."""
        if self.mtp_file is not None:
            return f"separate {self.mtp_file}"
        return {True: "inside", False: "none", None: "unchecked"}[self.mtp]

    @property
    def companion_bytes(self) -> int:
        """What is loaded beside the model's own files: the MTP file and the projector."""
        return (self.mtp_bytes or 0) + (self.projector_bytes or 0)

    @property
    def pull(self) -> str:
        """What `orchestrator model pull` takes to fetch it: a catalogue name where it is the catalogue
        model's own file, else REPO:QUANT."""
        for ref in KNOWN_MODELS.values():
            if ref.repo == self.repo and (ref.quant or self.quant).lower() == self.quant.lower():
                return ref.name
        return f"{self.repo}:{self.quant}"


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


# The catalogue model's own file: its names and sizes are the model description's (core.models), where
# each was seen is said here.
_STEP37 = KNOWN_MODELS["step-3.7-flash"]
STEP37_Q4_K_S = PublishedGguf(
    repo=_STEP37.repo or "",
    quant=_STEP37.quant or "",
    size_gib=round((_STEP37.weights_bytes or 0) / GIB, 2),
    size_seen=_STEP37_PARTS + "; 111.5 GB in " + _STEP37_README,
    parts=3,
    parts_seen=_STEP37_PARTS,
    mtp=True,
    mtp_seen=_STEP37_MTP,
    mtp_file=_STEP37.mtp_file,
    mtp_bytes=_STEP37.mtp_bytes,
    projector=_STEP37.projector_file,
    projector_bytes=_STEP37.projector_bytes,
    projector_seen=_STEP37_PROJECTOR + "; 3.97 GB in " + _STEP37_README,
    note="the publisher's own (imatrix-calibrated, a third-party README's table); the parts in a folder of "
    "the repository, the MTP file and projector at its root; Apache-2.0",
    model="step-3.7-flash",
)


def _stepfun37(quant: str, gigabytes: float) -> PublishedGguf:
    """The publisher's other two 3.7 quantisations: only their sizes are published (decimal GB, its README
    table); their parts are read when pulled, and the MTP file and projector are the repository's own."""
    return replace(
        STEP37_Q4_K_S,
        quant=quant,
        size_gib=round(gigabytes * 1e9 / GIB, 2),
        size_seen=_STEP37_README,
        parts=None,
        parts_seen="not seen: read from the files when pulled",
        mtp_seen="the repository's one MTP file, at its root, which `model pull` takes beside any of its "
        "quantisations: " + _STEP37_MTP,
        note="the publisher's own, smaller; Apache-2.0",
    )


PUBLISHED: tuple[PublishedGguf, ...] = (
    PublishedGguf(
        repo="stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
        quant="Q4_K_S",
        size_gib=103.8,
        size_seen="the catalogue's step-3.5-flash (111.5 GB of GGUF, 103.8 GiB of tensors): " + _STEP35_PARTS,
        parts=12,
        parts_seen=_STEP35_PARTS,
        mtp=False,
        mtp_seen="the publisher's README lists MTP as still to do",
        note="the publisher's own, calibrated (the hub page is tagged imatrix); Apache-2.0",
    ),
    _aessedai("Q8_0", 197.43, "2.419187", "0.005594"),
    _aessedai("Q5_K_M", 138.83, "2.431812", "0.015249"),
    _aessedai("Q4_K_M", 116.22, "2.477162", "0.040282"),
    _aessedai("IQ4_XS", 91.31, "2.685042", "0.127994"),
    _aessedai("IQ3_S", 70.89, "3.313628", "0.355228"),
    _aessedai("IQ2_S", 64.43, "3.772340", "0.488752"),
    STEP37_Q4_K_S,
    _stepfun37("IQ4_XS", 104.99),
    _stepfun37("Q3_K_L", 102.5),
    PublishedGguf(
        repo="unsloth/Step-3.7-Flash-GGUF",
        quant="UD-Q4_K_S",
        size_gib=106.32,
        size_seen=_UNSLOTH_37,
        parts=4,
        parts_seen=_UNSLOTH_37,
        mtp=None,
        mtp_seen="no MTP files in unsloth's 3.7 listing as a stored third-party copy gave it (issue #37's "
        "facts), not checked: read from the files when pulled",
        projector=None,
        projector_seen="three projectors in that listing, names not seen: choose one when pulled",
        note="a community mixture (unsloth's dynamic quantisation); without MTP heads, so no speculation",
        model="step-3.7-flash",
    ),
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


# The MTP heads the published Step files carry (blocks 45-47).
PUBLISHED_MTP_HEADS = 3


def _draft_n(file: PublishedGguf, speculative: Speculative) -> int:
    """Draft tokens the profile's MTP setting runs with this file's heads (0: it does not speculate)."""
    if speculative.kind != "mtp" or not file.mtp:
        return 0
    return min(speculative.draft_n or PUBLISHED_MTP_HEADS, PUBLISHED_MTP_HEADS)


def verdict(file: PublishedGguf, target: Target, profile: Profile, facts: HostFacts) -> Verdict:
    """The memory plan of the file with what is loaded beside it: the projector's weights and, where the
    profile speculates with MTP, the MTP file's weights (the heads inside a file are in its size) and
    the draft context's KV cache over the heads."""
    draft_n = _draft_n(file, profile.speculative)
    arch = step35_published(PUBLISHED_MTP_HEADS if draft_n else 0)
    heads = arch.heads() if draft_n else None
    weights = (
        int(file.size_gib * GIB) + (file.projector_bytes or 0) + ((file.mtp_bytes or 0) if draft_n else 0)
    )
    usable = budget(target, profile, facts).usable

    def work_at(ctx: int, cache: str | None = None) -> Workload:
        return profile_server(profile, ctx, cache=cache, draft_n=draft_n, heads=heads)

    work = work_at(min(profile.ctx, arch.context_length))
    needs = estimate(arch, weights, work).total
    fits = "unknown"
    cache = work.cache_k
    if usable is not None:
        if needs <= usable:
            fits = "fits"
        elif cache != "q8_0" and estimate(arch, weights, work_at(work.ctx, "q8_0")).total <= usable:
            fits, cache = "fits with q8_0 KV", "q8_0"
        else:
            fits = "does not fit"
    whole = work_at(arch.context_length, cache)
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
    """The targets made to serve the Step models (each serves Step-3.5-Flash by default and Step-3.7-Flash
    when asked: `--model step-3.7-flash`)."""
    return [t for t in targets if t.default_model == "step-3.5-flash"]


def published(repo: str, quant: str | None) -> PublishedGguf | None:
    """The catalogue's entry for what `model pull REPO[:QUANT]` (or a catalogue name, given as its repo
    and quantisation) fetches, if it has one."""
    for file in PUBLISHED:
        if file.repo.lower() != repo.lower():
            continue
        if quant is None and file.pull == file.model and KNOWN_MODELS[file.model].quant is None:
            return file
        if quant is not None and file.quant.lower() == quant.lower():
            return file
    return None


def companion_differences(file: PublishedGguf, name: str, size: int, kind: str) -> list[str]:
    """Where a pulled MTP file or projector (kind "mtp" or "projector") is not what the catalogue lists."""
    listed = (file.mtp_file, file.mtp_bytes) if kind == "mtp" else (file.projector, file.projector_bytes)
    found = []
    if listed[0] is not None and listed[0] != name.rsplit("/", 1)[-1]:
        found.append(f"{kind} file: the catalogue says {listed[0]}, the repository has {name}")
    if listed[1] is not None and listed[1] != size:
        found.append(f"{kind} file: the catalogue says {listed[1]} bytes, {name} has {size}")
    return found


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
