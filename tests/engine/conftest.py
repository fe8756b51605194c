"""Fixtures the engine tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import running_registry


@pytest.fixture
def local_registry(tmp_path: Path) -> Iterator[str]:
    """A throwaway registry on 127.0.0.1 (the engine pushes to loopback registries over plain HTTP)."""
    with running_registry(tmp_path) as address:
        yield address
