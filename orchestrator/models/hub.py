"""Fetching GGUF files from a Hugging Face hub (or a mirror named by HF_ENDPOINT) with huggingface_hub.

Each file is fetched into `<name>.part` beside its final name, and the part is kept when a transfer stops,
so the next pull asks only for the missing bytes (an HTTP range request); it is renamed into place only
after its size and sha256 match the hub's metadata. huggingface_hub does the HTTP: metadata, redirects,
authentication (HF_TOKEN), and resuming within one run when the connection drops.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator.core.models import (
    KNOWN_MODELS,
    companion_kind,
    is_mtp_file_name,
    is_projector_name,
    known_model,
    stays_inside,
)
from orchestrator.errors import OrchestratorError, UsageError

DEFAULT_REPO = "stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S"
PART_SUFFIX = ".part"
# Room left on the disk after a pull, so the machine keeps working while the model is verified and loaded.
DISK_MARGIN = 2 << 30
_QUANT = re.compile(r"(?i)(?:^|[-_.])((?:I?Q\d[A-Z0-9_]*|BF16|F16|F32))(?:[-_.]|$)")
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")


class PullFailed(OrchestratorError):
    """The hub could not be reached, refused us, or sent something other than what it described."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class PullPlan:
    repo: str
    revision: str
    files: tuple[RemoteFile, ...]
    destination: Path

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def local(self, remote: RemoteFile) -> Path:
        """Where a file goes: the model's parts keep the repository's folders; an MTP file or projector
        published elsewhere in the repository (StepFun's 3.7 puts them at the root, the parts in a folder)
        goes into the model's own folder, so that it is found beside the model as upstream finds it."""
        if not stays_inside(remote.name):
            raise PullFailed(f"{remote.name!r} leaves the repository's folder; nothing is written there")
        folder = Path(self.files[0].name).parent
        if companion_kind(remote.name) and Path(remote.name).parent != folder:
            return self.destination / folder / Path(remote.name).name
        return self.destination / remote.name

    def missing_bytes(self) -> int:
        """Bytes still to transfer: complete files count nothing, kept parts count what they lack."""
        missing = 0
        for remote in self.files:
            final = self.local(remote)
            if final.is_file() and final.stat().st_size == remote.size:
                continue
            part = final.with_name(final.name + PART_SUFFIX)
            have = part.stat().st_size if part.is_file() else 0
            missing += max(remote.size - have, 0)
        return missing


def parse_ref(ref: str | None) -> tuple[str, str | None]:
    """`owner/name[:QUANT]` or a catalogue name (step-3.7-flash) -> (repo, quant); nothing -> the
    publisher's Step-3.5 Q4_K_S repository."""
    if not ref:
        return DEFAULT_REPO, None
    known = known_model(ref)
    if known is not None and known.repo is not None:
        return known.repo, known.quant
    repo, _, quant = ref.partition(":")
    if not _REPO.match(repo) or not stays_inside(repo):
        names = ", ".join(n for n, r in KNOWN_MODELS.items() if r.repo)
        raise UsageError(
            f"{ref!r} is neither a model of the catalogue ({names}) nor a hub repository; write it as "
            f"owner/name[:QUANT], e.g. {DEFAULT_REPO}"
        )
    return repo, quant or None


def quant_of(name: str) -> str | None:
    stem = Path(name).name.removesuffix(".gguf")
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else None


def _beside(
    files: Sequence[RemoteFile], chosen: Sequence[RemoteFile], wanted: Callable[[str], bool]
) -> list[RemoteFile]:
    """The files of a kind in the model's own folder, else at the repository's root."""
    folder = Path(chosen[0].name).parent
    for where in (folder, Path(".")):
        found = [f for f in files if wanted(f.name) and Path(f.name).parent == where]
        if found:
            return found
    return []


def _pick(candidates: list[RemoteFile], quant: str | None, preferred: Sequence[str]) -> RemoteFile | None:
    """One of several: the model's own quantisation, else the first preferred one, else the smallest."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    same = [f for f in candidates if quant_of(f.name) == quant]
    if len(same) == 1:
        return same[0]
    for kind in preferred:
        of_kind = [f for f in candidates if quant_of(f.name) == kind]
        if len(of_kind) == 1:
            return of_kind[0]
    return min(candidates, key=lambda f: (f.size, f.name))


def choose_sidecar(files: Sequence[RemoteFile], chosen: Sequence[RemoteFile]) -> RemoteFile | None:
    """The repository's MTP file for the chosen model files: in the same folder, else at the root (StepFun's
    3.7 layout); of the same quantisation when there are several (as llama.cpp's own -hf download picks
    one), else the Q8_0 one (StepFun publishes Q8_0 and BF16 heads), else the smallest."""
    taken = {f.name for f in chosen}
    others = [f for f in files if f.name not in taken]
    return _pick(_beside(others, chosen, is_mtp_file_name), quant_of(chosen[0].name), ("Q8_0",))


def choose_projector(files: Sequence[RemoteFile], chosen: Sequence[RemoteFile]) -> RemoteFile | None:
    """The repository's vision projector for the chosen model files (mmproj*.gguf), found as the MTP file
    is; of several, the f16 one, else BF16, else the smallest."""
    return _pick(_beside(files, chosen, is_projector_name), quant_of(chosen[0].name), ("F16", "BF16"))


def choose_files(files: Sequence[RemoteFile], quant: str | None, repo: str) -> tuple[RemoteFile, ...]:
    """The GGUF files of one quantisation (every split part of it); vision projectors and MTP files
    are left out (unless "MTP" in the names is all there is: a model published with its heads inside,
    named so)."""
    ggufs = [f for f in files if f.name.endswith(".gguf") and not companion_kind(f.name)]
    ggufs = ggufs or [f for f in files if f.name.endswith(".gguf") and not is_projector_name(f.name)]
    if not ggufs:
        raise UsageError(f"{repo} holds no .gguf files; choose a GGUF repository")
    if quant is not None:
        chosen = [f for f in ggufs if (quant_of(f.name) or "") == quant.upper()]
        chosen = chosen or [f for f in ggufs if fnmatch.fnmatch(f.name.lower(), f"*{quant.lower()}*")]
        if not chosen:
            known = sorted({q for f in ggufs if (q := quant_of(f.name))})
            raise UsageError(
                f"{repo} has no {quant} files; it has: {', '.join(known) or ', '.join(f.name for f in ggufs)}"
            )
        return tuple(sorted(chosen, key=lambda f: f.name))
    quants = {quant_of(f.name) for f in ggufs}
    if len(quants) > 1:
        listed = ", ".join(sorted(q or "?" for q in quants))
        raise UsageError(f"{repo} holds several quantisations ({listed}); pick one: {repo}:QUANT")
    return tuple(sorted(ggufs, key=lambda f: f.name))


def endpoint() -> str | None:
    # Read at call time: huggingface_hub reads HF_ENDPOINT once, when it is first imported.
    return os.environ.get("HF_ENDPOINT") or None


def _hub_error(exc: Exception, what: str) -> PullFailed:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return PullFailed(f"{what}: the repository is gated; accept its terms on the hub and set HF_TOKEN")
    if isinstance(exc, RepositoryNotFoundError):
        return PullFailed(f"{what}: no such repository (or it is private: set HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError):
        return PullFailed(f"{what}: no such revision")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return PullFailed(f"{what}: the hub answered HTTP {status}; try again later (the download resumes)")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return PullFailed(
        f"{what}: {reason}; check the network or HF_ENDPOINT and pull again (the download resumes)"
    )


def list_files(repo: str, revision: str | None = None) -> tuple[str, list[RemoteFile]]:
    """The commit the revision names and every file there, with sizes and sha256 where the hub keeps them."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # huggingface_hub raises many types; each becomes one line.
        raise _hub_error(exc, f"cannot list {repo}") from None
    files = [
        RemoteFile(
            name=s.rfilename,
            size=int(s.lfs.size if s.lfs else (s.size or 0)),
            sha256=s.lfs.sha256 if s.lfs else None,
        )
        for s in info.siblings or []
    ]
    strays = [f.name for f in files if not stays_inside(f.name)]
    if strays:
        raise PullFailed(
            f"the hub's listing of {repo} names {strays[0]!r}, a path outside the repository's folder; "
            "nothing was fetched: check HF_ENDPOINT points at a hub you trust"
        )
    return str(info.sha or revision or "main"), files


def plan_pull(
    repo: str,
    quant: str | None,
    destination: Path,
    revision: str | None = None,
    mtp: bool = True,
    projector: bool = True,
) -> PullPlan:
    """The model's files, then (mtp) the MTP file and (projector) the vision projector the repository has
    for them, if any."""
    commit, files = list_files(repo, revision)
    chosen = choose_files(files, quant, repo)
    sidecar = choose_sidecar(files, chosen) if mtp else None
    vision = choose_projector(files, chosen) if projector else None
    extra = tuple(f for f in (sidecar, vision) if f is not None)
    return PullPlan(repo, commit, chosen + extra, destination)


def check_disk(plan: PullPlan) -> None:
    probe = plan.destination
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = plan.missing_bytes()
    if need and free < need + DISK_MARGIN:
        raise UsageError(
            f"the download needs {need / 2**30:.1f} GiB (+{DISK_MARGIN >> 30} GiB spare) but {probe} has "
            f"{free / 2**30:.1f} GiB free; free some space or pull into another --models-dir"
        )


class _Bar:
    """What huggingface_hub's downloader needs from a tqdm class, reporting bytes to a callback."""

    def __init__(self, on_bytes: Callable[[int], None], initial: int = 0, **_: Any) -> None:
        self._on_bytes = on_bytes
        if initial:
            on_bytes(0)

    def update(self, n: int = 1) -> None:
        self._on_bytes(n)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Bar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def fetch(plan: PullPlan, remote: RemoteFile, on_bytes: Callable[[int], None]) -> Path:
    """Bring one file to `<destination>/<name>.part` (resuming a kept part) and return the part's path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils._headers import build_hf_headers

    # Its own warnings ("Error while downloading ..., trying to resume") would break our one line: a
    # resume inside the transfer is silent, a failure is ours to say.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)

    final = plan.local(remote)
    part = final.with_name(final.name + PART_SUFFIX)
    part.parent.mkdir(parents=True, exist_ok=True)
    url = hf_hub_url(plan.repo, remote.name, revision=plan.revision, endpoint=endpoint())
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint())
        if meta.size is not None and meta.size != remote.size:
            raise PullFailed(
                f"{remote.name}: the hub lists {remote.size} bytes but serves {meta.size}; pull again later"
            )
        have = part.stat().st_size if part.is_file() else 0
        if have > remote.size:
            # Longer than the file can be: not ours to extend; start this part again.
            part.unlink()
            have = 0
        with part.open("ab") as handle:
            http_get(
                meta.location,
                handle,
                resume_size=have,
                headers=build_hf_headers(),
                expected_size=remote.size,
                displayed_filename=remote.name,
                tqdm_class=lambda **kw: _Bar(on_bytes, **kw),  # type: ignore[arg-type]
            )
    except PullFailed:
        raise
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise _hub_error(exc, f"downloading {remote.name} stopped") from None
        kept = part.stat().st_size if part.is_file() else 0
        raise PullFailed(
            f"the disk holding {part.parent} is full after {kept / 2**20:.1f} MiB of {remote.name}; "
            f"{(remote.size - kept) / 2**20:.1f} MiB more are needed for it (+{DISK_MARGIN >> 30} GiB spare): "
            "free space and pull again, it resumes from the kept part"
        ) from None
    except Exception as exc:  # network and hub errors: the part stays for the next pull.
        raise _hub_error(exc, f"downloading {remote.name} stopped") from None
    return part
