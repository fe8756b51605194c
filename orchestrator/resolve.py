"""Gathering a plan's inputs: settings, host facts, target, source and model. The I/O before planning."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.detect import detect_target
from orchestrator.errors import UsageError
from orchestrator.models import describe, resolve_model
from orchestrator.plan import SEED_PROMPT, BenchOverride, Plan, make_plan
from orchestrator.probe import HostFacts, probe
from orchestrator.settings import Settings, check_exposure, load_settings
from orchestrator.sources import Source, parse_source, resolve_source
from orchestrator.targets import Target, get_target


@dataclass(frozen=True)
class Resolved:
    settings: Settings
    facts: HostFacts
    target: Target
    detection: str | None


def resolve_target(settings: Settings, facts: HostFacts) -> tuple[Target, str | None]:
    name = settings["target"]
    if name == "auto":
        detection = detect_target(facts)
        return get_target(detection.target), detection.reason
    return get_target(name), None


def resolve(flags: Mapping[str, object], facts: HostFacts | None = None) -> Resolved:
    settings = load_settings(flags)
    facts = probe() if facts is None else facts
    target, detection = resolve_target(settings, facts)
    return Resolved(settings, facts, target, detection)


def plan_from_flags(
    flags: Mapping[str, object],
    facts: HostFacts | None = None,
    source: Source | None = None,
    *,
    bench_override: BenchOverride | None = None,
    prompt: str | None = None,
) -> Plan:
    """The plan for these flags; `source` replaces the configured one (a mirror of the same commit)."""
    resolved = resolve(flags, facts)
    settings, target = resolved.settings, resolved.target
    check_exposure(settings)
    profile = target.profile(settings["profile"])
    if settings["native"] and target.runtime == "container" and resolved.facts.system != "Linux":
        raise UsageError("--native on a container target needs a Linux host; drop --native")
    source = source or resolve_source(parse_source(settings["source"]))
    model = resolve_model(_registered(settings), target.default_model, settings["models_dir"])
    model = describe(model, settings["data_dir"] / "cache" / "gguf.json")
    return make_plan(
        target,
        profile,
        source,
        model,
        settings,
        resolved.facts,
        resolved.detection,
        bench_override=bench_override,
        prompt=prompt or SEED_PROMPT,
    )


def _registered(settings: Settings) -> Path | None:
    """--model NAME names a registered model ('orchestrator model list') when no such file exists."""
    wanted = settings["model"]
    if wanted is None or Path(wanted).expanduser().exists() or len(Path(wanted).parts) != 1:
        return wanted  # type: ignore[no-any-return]
    from orchestrator.store import find

    entry = find(settings["models_dir"], str(wanted))
    return entry.first if entry is not None else Path(wanted)
