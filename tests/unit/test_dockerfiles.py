"""The Dockerfiles take everything from the catalogue as build arguments; the only values they hold
themselves are the default bases, which must be the catalogue's."""

from __future__ import annotations

import re

import pytest

from orchestrator.core.catalogue import FAMILIES
from orchestrator.core.plan import SHIPPED_TOOLS
from orchestrator.executors.assets import asset
from tests.planning import fixed_plan


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_default_bases_are_the_catalogues(family: str) -> None:
    text = asset(FAMILIES[family].dockerfile).read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    assert defaults == {
        "BUILD_BASE": FAMILIES[family].build_base,
        "RUNTIME_BASE": FAMILIES[family].runtime_base,
    }


@pytest.mark.parametrize("target", ["dgx-spark", "cpu"])
def test_every_build_argument_is_declared_and_nothing_else_is(target: str) -> None:
    plan = fixed_plan(target, "default")
    build = plan.build
    assert hasattr(build, "build_args")
    text = asset(build.dockerfile).read_text()  # type: ignore[union-attr]
    declared = set(re.findall(r"^ARG (\w+)", text, re.MULTILINE))
    # BUILD_JOBS and LLAMA_BUILD_NUMBER are optional knobs for people running docker build by hand.
    assert declared - {"BUILD_JOBS", "LLAMA_BUILD_NUMBER"} == set(build.build_args)  # type: ignore[union-attr]
    assert "cmake" not in text.lower().replace("cmake_args", "")


def test_build_script_is_shared_and_names_no_flags() -> None:
    script = asset("images/common/build-llama.sh").read_text()
    assert "-DGGML" not in script and "GGML_CUDA" not in script
    assert "rpc-server" in " ".join(SHIPPED_TOOLS)
