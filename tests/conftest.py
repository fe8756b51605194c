from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.facts import HostFacts, RawProbe, parse_facts

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def load_raw_probe(name: str) -> RawProbe:
    data = json.loads((FIXTURES / "hosts" / f"{name}.json").read_text())
    data["kfd_properties"] = tuple(data["kfd_properties"])
    data["drm_ids"] = tuple(tuple(pair) for pair in data["drm_ids"])
    return RawProbe(**data)


def host_facts(name: str) -> HostFacts:
    return parse_facts(load_raw_probe(name))


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No orchestrator.yaml or ORCHESTRATOR_* from the developer's machine leaks into a test."""
    for name in list(__import__("os").environ):
        if name.startswith("ORCHESTRATOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture(scope="session")
def cpu_image() -> object:
    from tests.integration import build_cpu_image

    return build_cpu_image()
