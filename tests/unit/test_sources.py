from __future__ import annotations

import pytest

from orchestrator.core.sources import NAMED_SOURCES, parse_source
from orchestrator.errors import UsageError
from tests.assets import PINNED_UPSTREAM_COMMIT


def test_named_sources() -> None:
    upstream = parse_source("upstream")
    assert upstream.kind == "git" and upstream.commit == PINNED_UPSTREAM_COMMIT
    assert upstream.url == "https://github.com/ggml-org/llama.cpp.git"
    assert upstream.short_revision == "0c1e570"
    fork = parse_source("stepfun-fork")
    assert fork.subdir == "llama.cpp" and "stepfun-ai/Step-3.5-Flash" in (fork.url or "")
    assert fork.mmap_syntax == "mmap" and upstream.mmap_syntax == "load-mode"
    assert set(NAMED_SOURCES) == {"upstream", "stepfun-fork"}


def test_git_spec_with_subdir() -> None:
    src = parse_source("https://github.com/me/llama.cpp.git@ABCDEF1234#subdir=llama.cpp")
    assert (src.kind, src.url, src.commit, src.subdir) == (
        "git",
        "https://github.com/me/llama.cpp.git",
        "abcdef1234",
        "llama.cpp",
    )
    assert parse_source("git+https://example.org/x.git@1234567").url == "https://example.org/x.git"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("https://github.com/ggml-org/llama.cpp.git", "URL@COMMIT"),
        ("https://github.com/ggml-org/llama.cpp.git@master", "pin a commit"),
        ("https://github.com/x/y.git@1234567#subdir=../etc", "inside the repository"),
        ("mainline", "unknown source"),
        ("", "empty"),
    ],
)
def test_bad_specs_say_what_to_do(spec: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_source(spec)
