"""Where llama.cpp comes from: a pinned git commit (fetched inside the build) or a local directory.

Pure: `parse_source` reads a `--source` value; reading a local tree (orchestrator.executors.sources)
fills in its revision.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from orchestrator.errors import UsageError

SourceKind = Literal["git", "local"]
# llama.cpp replaced `--mmap/--no-mmap` with `--load-mode` in 2026; the publisher's fork predates that.
MmapSyntax = Literal["load-mode", "mmap"]


@dataclass(frozen=True)
class SdistMirror:
    """The same tree, vendored in a package on the Python package index: for hosts that reach the
    index but not the git server."""

    package: str
    version: str
    sha256: str
    subdir: str

    def describe(self) -> str:
        return f"{self.package} {self.version} sdist ({self.subdir})"


@dataclass(frozen=True)
class Source:
    name: str
    kind: SourceKind
    url: str | None = None
    commit: str | None = None
    subdir: str = ""
    path: Path | None = None
    # For local sources: the git commit of the tree, or a fingerprint of its files when it has none.
    revision: str | None = None
    summary: str = ""
    mmap_syntax: MmapSyntax = "load-mode"
    mirror: SdistMirror | None = None

    @property
    def short_revision(self) -> str:
        """What names this source in image tags and install prefixes."""
        rev = self.commit if self.kind == "git" else self.revision
        if rev is None:
            return "unresolved"
        return rev[:7] if re.fullmatch(r"[0-9a-f]{7,40}", rev) else rev

    def describe(self) -> str:
        if self.kind == "git":
            sub = f" (subdir {self.subdir})" if self.subdir else ""
            return f"{self.url}@{self.commit}{sub}"
        return f"{self.path} ({self.revision or 'revision not read yet'})"


# ggml-org/llama.cpp at 2026-10-01: contains PR #19283 (Step-3.5-Flash support) and PR #19635 (its
# tool-call fix). The same commit is vendored by llama-cpp-python 0.3.36, which the tests build.
UPSTREAM_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"

NAMED_SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        "upstream": Source(
            name="upstream",
            kind="git",
            url="https://github.com/ggml-org/llama.cpp.git",
            commit=UPSTREAM_COMMIT,
            summary="ggml-org/llama.cpp with Step-3.5-Flash support merged (default)",
            mirror=SdistMirror(
                package="llama-cpp-python",
                version="0.3.36",
                sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
                subdir="vendor/llama.cpp",
            ),
        ),
        "stepfun-fork": Source(
            name="stepfun-fork",
            kind="git",
            url="https://github.com/stepfun-ai/Step-3.5-Flash.git",
            commit="fabede3d3c40a5c567c86f206557e44dd652ae28",
            subdir="llama.cpp",
            mmap_syntax="mmap",
            summary="the publisher's fork, exactly what its README builds (now marked obsolete upstream)",
        ),
    }
)

_HEX_COMMIT = re.compile(r"[0-9a-fA-F]{7,40}")
_GIT_SPEC = re.compile(
    r"^(?:git\+)?(?P<url>(?:https?|ssh|git|file)://[^@#\s]+|git@[^:\s]+:[^@#\s]+)"
    r"@(?P<commit>[^#\s]+)(?:#subdir=(?P<subdir>[^\s]+))?$"
)


def parse_source(spec: str) -> Source:
    """Turn a `--source` value into a Source: a name, `URL@COMMIT[#subdir=DIR]`, or a directory."""
    spec = spec.strip()
    if not spec:
        raise UsageError("empty --source; give upstream, stepfun-fork, URL@COMMIT or a directory")
    if spec in NAMED_SOURCES:
        return NAMED_SOURCES[spec]
    if "://" in spec or spec.startswith(("git@", "git+")):
        match = _GIT_SPEC.match(spec)
        if not match:
            raise UsageError(
                f"bad source {spec!r}: write a git source as URL@COMMIT[#subdir=DIR], "
                "e.g. https://github.com/ggml-org/llama.cpp.git@0c1e570"
            )
        commit = match["commit"]
        if not _HEX_COMMIT.fullmatch(commit):
            raise UsageError(f"bad source {spec!r}: pin a commit hash (7-40 hex digits), not {commit!r}")
        subdir = (match["subdir"] or "").strip("/")
        if ".." in Path(subdir).parts:
            raise UsageError(f"bad source {spec!r}: subdir must stay inside the repository")
        return Source(name="git", kind="git", url=match["url"], commit=commit.lower(), subdir=subdir)
    if spec.startswith(("/", ".", "~")) or os.sep in spec:
        return Source(name="local", kind="local", path=Path(spec).expanduser())
    known = ", ".join(NAMED_SOURCES)
    raise UsageError(f"unknown source {spec!r}: use {known}, URL@COMMIT, or a directory path (./llama.cpp)")


# Written into a tree unpacked from a mirror: the commit it holds and a fingerprint of its files.
REVISION_MARKER = ".step-flash-revision"
