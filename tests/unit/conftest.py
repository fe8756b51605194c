"""Fixtures the workflow tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import FakeEngine, executors


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A real, tiny mixture-of-experts GGUF under tmp_path/models (the fakes never load it)."""
    from tests.tiny_gguf import write_tiny_moe

    path = tmp_path / "models" / "tiny-moe.gguf"
    path.parent.mkdir()
    write_tiny_moe(path)
    return path


@pytest.fixture
def fake_executors(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The CLI in this process (main()), its engine and host the recording fakes: nothing runs for real."""
    from orchestrator.app.session import Session

    engine = FakeEngine()
    monkeypatch.setattr(Session, "executors", lambda self: executors(engine))
    return engine
