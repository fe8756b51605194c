"""Gathering a plan's inputs: settings, host facts, target, source and model. The I/O before planning,
done once per command; `plan_for` hands the result to the pure planner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.app.config import load_settings
from orchestrator.core.catalogue import Target, get_target
from orchestrator.core.detect import detect_target
from orchestrator.core.facts import HostFacts
from orchestrator.core.models import known_model
from orchestrator.core.plan import Plan, PlanInputs, make_plan
from orchestrator.core.plan.programs import SEED_PROMPT, BenchOverride
from orchestrator.core.settings import NO_PROJECTOR, Settings
from orchestrator.core.sources import parse_source
from orchestrator.errors import OrchestratorError
from orchestrator.executors.probe import probe
from orchestrator.executors.sources import resolve_source
from orchestrator.models.local import describe, resolve_model
from orchestrator.models.store import find


@dataclass(frozen=True)
class Request:
    """What a command was asked for: the setting flags, plus what only some commands take."""

    flags: Mapping[str, object]
    bench_override: BenchOverride | None = None
    prompt: str = SEED_PROMPT
    # For commands that only reach a server already running (down, status, logs): a companion file that
    # cannot be used now (two projectors beside the model, an MTP file gone) does not stop them.
    companions_optional: bool = False


def resolve_target(settings: Settings, facts: HostFacts) -> tuple[Target, str | None]:
    name = settings.target
    if name == "auto":
        detection = detect_target(facts)
        return get_target(detection.target), detection.reason
    return get_target(name), None


def gather(request: Request, facts: HostFacts | None = None, *, companions: bool = True) -> PlanInputs:
    """companions: look for the model's MTP file and projector (off: the model alone)."""
    settings = load_settings(request.flags)
    facts = probe() if facts is None else facts
    target, detection = resolve_target(settings, facts)
    profile = target.profile(settings.profile)
    source = resolve_source(parse_source(settings.source))
    path, name = model_choice(settings, target.default_model)
    pulled = find(settings.models_dir, name) if path is None else None
    model = resolve_model(path, name, settings.models_dir, pulled.first if pulled else None)
    cache = settings.data_dir / "cache" / "gguf.json"
    if companions:
        model = describe(model, cache, settings.draft_model, settings.mmproj)
    else:
        model = describe(model, cache, None, NO_PROJECTOR, companions=False)
    return PlanInputs(
        target=target,
        profile=profile,
        source=source,
        model=model,
        settings=settings,
        facts=facts,
        detection=detection,
        bench_override=request.bench_override,
        prompt=request.prompt,
    )


def plan_for(request: Request, facts: HostFacts | None = None) -> Plan:
    """The one plan of a command; for one that only reaches a running server, made again without the
    model's companions where they stopped it (a damaged projector, another model's MTP file): a problem
    that is not theirs is raised again."""
    facts = probe() if facts is None else facts
    try:
        return make_plan(gather(request, facts))
    except OrchestratorError:
        if not request.companions_optional:
            raise
        return make_plan(gather(request, facts, companions=False))


def model_choice(settings: Settings, default_model: str) -> tuple[Path | None, str]:
    """What --model names: a file (or a name registered by 'model add' / 'model pull'), else a model of the
    catalogue not pulled yet (step-3.7-flash: planned from its published architecture, pulled by `up` as
    the default model is); without it, the target's default model."""
    wanted = settings.model
    if wanted is None:
        return None, default_model
    path = registered_path(settings.models_dir, str(wanted))
    known = known_model(str(wanted))
    if known is not None and path == Path(str(wanted)) and not path.exists():
        return None, known.name
    return path, default_model


def registered_path(models_dir: Path, wanted: str) -> Path:
    """A file, or a name registered in the models directory ('orchestrator model list') when no such
    file exists."""
    if Path(wanted).expanduser().exists() or len(Path(wanted).parts) != 1:
        return Path(wanted)
    entry = find(models_dir, wanted)
    return entry.first if entry is not None else Path(wanted)
