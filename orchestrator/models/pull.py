"""`orchestrator model pull`: list, check the disk, fetch each part (resuming), verify size and sha256,
move into place, check the GGUF set, register. A file already in place is never replaced: it is either
the published one (kept) or the pull stops and says so."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.model_catalogue import companion_differences, differences, published
from orchestrator.core.models import KNOWN_MODELS, companion_kind, is_mtp_file_name, is_projector_name
from orchestrator.errors import InvalidModel, UsageError
from orchestrator.models import hub, store
from orchestrator.models.gguf import read_model, read_projector
from orchestrator.models.local import file_sha256, remember_sha256

ByteCounter = Callable[[int], None]


@dataclass(frozen=True)
class PullReport:
    note: Callable[[str], None]
    # A context manager per file: (label, total bytes, bytes already there) -> a byte counter.
    transfer: Callable[[str, int, int], AbstractContextManager[ByteCounter]]


@dataclass(frozen=True)
class Pulled:
    entry: store.Entry
    fetched: tuple[str, ...]
    kept: tuple[str, ...]


def model_name(repo: str, quant: str | None) -> str:
    known = next(
        (
            r.name
            for r in KNOWN_MODELS.values()
            if r.repo == repo and (r.quant or "").lower() == (quant or "").lower()
        ),
        None,
    )
    if known:
        return known
    base = repo.split("/", 1)[1].lower()
    return f"{base}:{quant.lower()}" if quant else base


def _sha_of(path: Path, report: PullReport, label: str) -> str:
    digest = hashlib.sha256()
    with report.transfer(f"sha256 {label}", path.stat().st_size, 0) as counted, path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
            counted(len(block))
    return digest.hexdigest()


def pull(
    ref: str | None,
    models_dir: Path,
    data_dir: Path,
    report: PullReport,
    revision: str | None = None,
    confirm: Callable[[hub.PullPlan], bool] | None = None,
    mtp: bool = True,
    projector: bool = True,
) -> Pulled:
    """ref: owner/repo[:QUANT] or a catalogue name (step-3.7-flash).
    confirm: asked with the listing (sizes) once the disk check passed, before any transfer.
    mtp, projector: fetch the repository's MTP file and vision projector for the model too, when it has
    them; they are placed in the model's own folder (hub.PullPlan.local)."""
    repo, quant = hub.parse_ref(ref)
    plan = hub.plan_pull(repo, quant, models_dir / repo, revision, mtp=mtp, projector=projector)
    sha_cache = data_dir / "cache" / "sha256.json"
    report.note(
        f"{repo}@{plan.revision[:12]}: {len(plan.files)} file(s), {plan.total_bytes / 2**30:.2f} GiB "
        f"into {plan.destination}"
    )
    hub.check_disk(plan)
    if confirm is not None and not confirm(plan):
        raise UsageError(f"not pulling {repo}, as you said; nothing was fetched")
    fetched: list[str] = []
    # Every file already in place is checked before anything is fetched: one that is not the published
    # file stops the pull now, not after the rest has come.
    kept: list[str] = []
    for remote in plan.files:
        final = plan.local(remote)
        if not final.is_file():
            continue
        same_size = final.stat().st_size == remote.size
        if same_size and (remote.sha256 is None or file_sha256(final, sha_cache) == remote.sha256):
            kept.append(remote.name)
            continue
        raise InvalidModel(
            f"{final} is already there but is not the published file; move it aside (it is left "
            "untouched) and pull again"
        )
    for remote in _fetch_order(plan.files):
        if remote.name in kept:
            continue
        final = plan.local(remote)
        same = _same_companion(plan, remote, sha_cache) if companion_kind(remote.name) else None
        if same is not None:
            report.note(
                f"{remote.name}: linked from {same} (the same file, pulled with another quantisation)"
            )
            kept.append(remote.name)
            continue
        part = final.with_name(final.name + hub.PART_SUFFIX)
        have = part.stat().st_size if part.is_file() else 0
        if have:
            report.note(f"{remote.name}: resuming at {have / 2**20:.1f} MiB of {remote.size / 2**20:.1f} MiB")
        with report.transfer(remote.name, remote.size, have) as counted:
            part = hub.fetch(plan, remote, counted)
        if part.stat().st_size != remote.size:
            raise InvalidModel(
                f"{part.name} has {part.stat().st_size} bytes, not the {remote.size} published; pull again"
            )
        if remote.sha256 is not None:
            digest = _sha_of(part, report, remote.name)
            if digest != remote.sha256:
                # Our own download, not the user's file: a damaged one would only be resumed wrongly.
                part.unlink()
                raise InvalidModel(
                    f"{remote.name} arrived damaged (sha256 {digest[:12]}..., published "
                    f"{remote.sha256[:12]}...); the download was discarded: pull again"
                )
        part.replace(final)
        if remote.sha256 is not None:
            remember_sha256(final, remote.sha256, sha_cache)
        fetched.append(remote.name)
    first = plan.local(plan.files[0])
    model = read_model(first)
    sidecars = [f for f in plan.files if is_mtp_file_name(f.name)]
    for sidecar in sidecars:
        heads = read_model(plan.local(sidecar)).mtp
        if heads.layout != "mtp-only":
            raise InvalidModel(
                f"{sidecar.name} is not an MTP sidecar ({heads.describe()}); the files are kept"
            )
        report.note(
            f"{sidecar.name}: the MTP sidecar ({heads.declared} heads), found beside the model by plan"
        )
    for vision in (f for f in plan.files if is_projector_name(f.name)):
        _check_projector(plan.local(vision))
        report.note(f"{vision.name}: the vision projector, found beside the model by plan")
    expected = next((r.expected_arch for r in KNOWN_MODELS.values() if r.repo == repo), None)
    if expected and model.arch.name != expected:
        raise InvalidModel(
            f"{repo} gave a {model.arch.name!r} model where {expected!r} was expected; "
            "the files are kept, but the target's default model will not load them"
        )
    listed = published(repo, quant)
    if listed is not None:
        has_heads = model.mtp.layout == "combined" or bool(sidecars)
        said = differences(listed, len(model.parts), model.weights_bytes, has_heads)
        for f in plan.files:
            kind = companion_kind(f.name)
            if kind is not None:
                said += companion_differences(
                    listed, f.name, f.size, "mtp" if kind == "MTP file" else "projector"
                )
        report.note(
            "checked against the catalogue ('model list --available'): "
            + (
                "; ".join(said) + " (the files are what counts)"
                if said
                else "size, parts, MTP heads and companion files as listed"
            )
        )
    entry = store.Entry(
        name=model_name(repo, quant),
        path=str(first.absolute()),
        origin=f"hub {repo}@{plan.revision}",
        managed=True,
        # Named where they are under the pull's folder (an MTP file or projector from the repository's root
        # sits in the model's folder), so that `model rm` finds every one.
        files=tuple(
            store.FileRecord(plan.local(f).relative_to(plan.destination).as_posix(), f.size, f.sha256)
            for f in plan.files
        ),
        architecture=model.arch.name,
    )
    store.record_pull(models_dir, entry.name, entry)
    return Pulled(entry, tuple(fetched), tuple(kept))


def _same_companion(plan: hub.PullPlan, remote: hub.RemoteFile, sha_cache: Path) -> Path | None:
    """An MTP file or projector already pulled beside another quantisation of the repository (StepFun's
    are one file at its root for all of them): hard-linked into place instead of fetched again, where it is
    the published file (size and sha256) and a link can be made. None: fetch it."""
    final = plan.local(remote)
    name = final.name
    for other in sorted([*plan.destination.glob(name), *plan.destination.glob(f"*/{name}")]):
        if other == final or not other.is_file() or other.is_symlink() or other.stat().st_size != remote.size:
            continue
        if remote.sha256 is None or file_sha256(other, sha_cache) != remote.sha256:
            continue
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.link(other, final)
        except OSError:
            return None
        return other
    return None


def _fetch_order(files: Sequence[hub.RemoteFile]) -> list[hub.RemoteFile]:
    """The model's first file comes last: a model is found (served, planned) by that file, so a pull cut
    short anywhere leaves it not found and the next `up` pulls again, resuming, instead of serving it
    without a part, its MTP file or its projector. The companions come first, then the other parts."""
    first, *rest = files
    companions = [f for f in rest if companion_kind(f.name)]
    return [*companions, *(f for f in rest if not companion_kind(f.name)), first]


def _check_projector(path: Path) -> None:
    """The projector is read as plan reads it (gguf.read_projector: clip, a projector type, a vision
    encoder); a file that is none is refused, and kept."""
    try:
        read_projector(path)
    except InvalidModel as exc:
        raise InvalidModel(f"{exc}; the files are kept") from None
