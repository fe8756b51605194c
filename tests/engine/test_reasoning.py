"""Reasoning levels for real in the cpu image (tests/reasoning_check.py says what is checked): the level
reaches the rendered prompt through the proxy, a request's own wins, and the thoughts come back apart from
the answer on the OpenAI and the Anthropic APIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import BuiltImage, needs_docker
from tests.reasoning_check import check_reasoning, reasoning_model

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def test_reasoning_levels_and_thoughts_through_the_proxy(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = reasoning_model(tmp_path / "models", cpu_image.source)
    seen = check_reasoning(cpu_image.args, model, "sfo-test-reasoning")
    print("reasoning, as seen:", seen)
