"""Local llama.cpp trees as sources: their revision read with this machine's git, or a fingerprint of
their files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.core.sources import UPSTREAM_COMMIT, parse_source
from orchestrator.errors import UsageError
from orchestrator.executors.sources import resolve_source


def _fake_tree(root: Path, *, load_mode: bool = True) -> Path:
    (root / "ggml").mkdir(parents=True)
    (root / "common").mkdir()
    (root / "CMakeLists.txt").write_text("project(llama.cpp)\n")
    (root / "common" / "arg.cpp").write_text('{"-lm", "--load-mode"}' if load_mode else '{"--mmap"}')
    return root


def test_local_source_fingerprint_changes_with_files(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path / "llama.cpp")
    first = resolve_source(parse_source(str(tree)))
    assert first.kind == "local" and first.path == tree.resolve()
    assert first.revision is not None and first.revision.startswith("tree-")
    assert resolve_source(parse_source(str(tree))).revision == first.revision
    (tree / "ggml" / "new.c").write_text("int x;\n")
    assert resolve_source(parse_source(str(tree))).revision != first.revision


def test_local_source_reads_git_commit_and_flag_style(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path / "fork", load_mode=False)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    src = resolve_source(parse_source(str(tree)))
    assert src.revision == head and src.short_revision == head[:7]
    assert src.mmap_syntax == "mmap"
    (tree / "CMakeLists.txt").write_text("changed\n")
    assert "dirty" in (resolve_source(parse_source(str(tree))).revision or "")


def test_local_source_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        resolve_source(parse_source(str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"not a llama\.cpp tree"):
        resolve_source(parse_source(str(tmp_path / "empty")))


def test_recorded_revision_holds_only_while_the_tree_is_unchanged(tmp_path: Path) -> None:
    from orchestrator.executors.sources import record_revision

    tree = _fake_tree(tmp_path / "unpacked")
    record_revision(tree, UPSTREAM_COMMIT)
    assert resolve_source(parse_source(str(tree))).revision == UPSTREAM_COMMIT
    (tree / "ggml" / "patched.c").write_text("int patched;\n")
    assert (resolve_source(parse_source(str(tree))).revision or "").startswith("tree-")
