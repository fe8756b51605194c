"""Fixtures the workflow tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A real, tiny mixture-of-experts GGUF under tmp_path/models (the fakes never load it)."""
    from tests.tiny_gguf import write_tiny_moe

    path = tmp_path / "models" / "tiny-moe.gguf"
    path.parent.mkdir()
    write_tiny_moe(path)
    return path
