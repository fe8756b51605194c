"""Staging the fallback web page (orchestrator.core.webui) into an image's build context: fetched once
by version and sha256 into the data directory's cache; where it cannot be had, the image has no page
and the build says why."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from orchestrator.core.webui import FALLBACK_MEMBER, FALLBACK_SDIST, fallback_source, with_compat
from orchestrator.errors import OrchestratorError
from orchestrator.fetch import fetch_sdist


def stage_fallback_page(folder: Path, cache: Path) -> str | None:
    """Write index.html and SOURCE (what it is) into folder; why not, when the page cannot be had."""
    folder.mkdir(parents=True, exist_ok=True)
    package, version, sha256 = FALLBACK_SDIST
    try:
        archive = fetch_sdist(package, version, sha256, cache)
        with tarfile.open(archive) as tar:
            member = tar.extractfile(f"{package.replace('-', '_')}-{version}/{FALLBACK_MEMBER}")
            if member is None:
                return (
                    f"the fallback web page ({package} {version}) cannot be had: {FALLBACK_MEMBER} is no file"
                )
            page = gzip.decompress(member.read()).decode()
    except (OrchestratorError, OSError, KeyError, EOFError) as exc:
        return f"the fallback web page ({package} {version}) cannot be had: {exc}"
    (folder / "index.html").write_text(with_compat(page))
    (folder / "SOURCE").write_text(fallback_source() + "\n")
    return None
