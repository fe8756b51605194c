"""The Dockerfiles take everything from the catalogue as build arguments; the only values they hold
themselves are the default bases, which must be the catalogue's."""

from __future__ import annotations

import re

import pytest

from orchestrator.core.families import FAMILIES
from orchestrator.core.plan.layout import SHIPPED_TOOLS
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
    # BUILD_JOBS and LLAMA_BUILD_NUMBER are optional knobs for people running docker build by hand;
    # TARGETARCH is BuildKit's own (the build script checks the programs are of that architecture).
    optional = {"BUILD_JOBS", "LLAMA_BUILD_NUMBER", "TARGETARCH"}
    assert declared - optional == set(build.build_args)  # type: ignore[union-attr]
    assert "cmake" not in text.lower().replace("cmake_args", "")


def test_build_script_is_shared_and_names_no_flags() -> None:
    script = asset("images/common/build-llama.sh").read_text()
    assert "-DGGML" not in script and "GGML_CUDA" not in script
    assert "rpc-server" in " ".join(SHIPPED_TOOLS)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_build_stages_run_where_the_catalogue_says(family: str) -> None:
    """A cross-compiling family's toolchain stage runs on the build machine's platform: the plan then adds
    the cross settings. Any other family's runs on the image's, where a plan without them is right."""
    text = asset(FAMILIES[family].dockerfile).read_text()
    toolchain = re.search(r"^FROM (.*) AS toolchain$", text, re.MULTILINE)
    assert toolchain is not None
    cross = toolchain.group(1).startswith("--platform=$BUILDPLATFORM ")
    assert cross == (FAMILIES[family].cross_packages is not None)
    # The build stage hands the script the image's architecture to check its programs against.
    build = text.split(" AS build", 1)[1].split(" AS runtime", 1)[0]
    assert "ARG TARGETARCH" in build
