"""Fixed inputs for plan tests: nothing from the machine running the tests reaches a golden file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.core.catalogue import CATALOGUE
from orchestrator.core.models import KNOWN_MODELS, ModelSpec
from orchestrator.core.plan import Plan, PlanInputs, make_plan
from orchestrator.core.settings import Layer, default_layer, merge_layers
from orchestrator.core.sources import NAMED_SOURCES, Source
from tests.conftest import host_facts

HOST_OF_TARGET = {
    "dgx-spark": "dgx-spark",
    "ryzen-ai-max": "ryzen-ai-max",
    "mac-studio": "mac-studio",
    "cpu": "cpu-debian",
}


def fixed_model(target: str) -> ModelSpec:
    ref = KNOWN_MODELS[CATALOGUE[target].default_model]
    return ModelSpec(
        alias=ref.alias,
        path=Path("/data/models") / ref.directory / ref.expected_file,
        present=True,
        origin=ref.origin,
        chat_template=ref.chat_template,
        size_bytes=int((ref.approx_gib or 0) * 2**30),
        expected_arch=ref.expected_arch,
        arch=ref.arch,
        weights_bytes=ref.weights_bytes,
        arch_source="published architecture",
    )


def fixed_plan(
    target: str,
    profile: str,
    overrides: Mapping[str, object] | None = None,
    source: Source | None = None,
    host: str | None = None,
) -> Plan:
    settings = merge_layers(
        [default_layer(Path("/data")), Layer("flag", {"profile": profile, **(overrides or {})})]
    )
    t = CATALOGUE[target]
    return make_plan(
        PlanInputs(
            target=t,
            profile=t.profile(profile),
            source=source or NAMED_SOURCES["upstream"],
            model=fixed_model(target),
            settings=settings,
            facts=host_facts(host or HOST_OF_TARGET[target]),
        )
    )
