from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.core.facts import HostFacts, RawProbe, parse_facts

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


# The port a user's server publishes on by default (orchestrator.core.settings).
DEFAULT_PORT = 8080


@pytest.fixture(scope="session", autouse=True)
def default_port_taken() -> Iterator[None]:
    """For the whole run 127.0.0.1:8080 is taken, as on a machine where the README's first command left
    its server up: by that server where one runs, otherwise by this socket. A test that reaches for the
    default port fails at once, here and on CI, instead of only where a user's server happens to run."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", DEFAULT_PORT))
        holder.listen()
    except OSError:
        holder.close()  # held already: the user's server (or another program) keeps it taken
    try:
        yield
    finally:
        holder.close()


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


TIERS = {
    "unit": "hermetic: no engine, network, child process or user data (guarded in tests/unit/conftest.py)",
    "host": "this machine's programs and files: git, shellcheck, lint-imports, processes, a browser",
    "docs": "the documentation site, built as a reader gets it",
    "engine": "a real Docker engine: images built and servers run",
}


def pytest_configure(config: pytest.Config) -> None:
    for tier, what in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {what}")


def _tier(item: pytest.Item) -> str | None:
    parts = Path(str(item.path)).relative_to(REPO / "tests").parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's mark, from its folder (`pytest -m unit` is the hermetic minute), and
    the tiers run fastest first, so a broken rule is reported before the images are built."""
    for item in items:
        tier = _tier(item)
        if tier is not None:
            item.add_marker(tier)
    order = list(TIERS)
    items.sort(key=lambda item: order.index(tier) if (tier := _tier(item)) else len(order))
