"""Reasoning levels for real on a native build (--native on Linux, as the Mac runs): the same checks as
the cpu image's (tests/reasoning_check.py), through the host's proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reasoning_check import check_reasoning, reasoning_model


@pytest.mark.slow
def test_reasoning_levels_and_thoughts_through_the_native_proxy(tmp_path: Path) -> None:
    from tests.assets import llama_cpp_source

    source = llama_cpp_source()
    args = ("--target", "cpu", "--native", "--source", str(source))
    seen = check_reasoning(args, reasoning_model(tmp_path / "models", source), "sfo-test-reasoning-native")
    print("reasoning, as seen:", seen)
