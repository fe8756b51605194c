"""Pure planning: target + profile + source + model + settings + host facts -> everything that will run.

Nothing here touches the disk, the network or docker; `orchestrator plan` prints exactly this, and the
executors (engine, native, hooks) carry it out without deciding anything of their own. A plan is made
once per command from its `PlanInputs` by `make_plan`; a fallback that changes it (another source, local
bases, the model once written) goes through one of the named `with_*` functions at the end of this module.
This module is the front door; each part of a plan is made in a module of its own: image (the image
build), native (the host build), server (llama-server's command), container and compose (how it runs),
programs (llama-cli and llama-batched-bench), host_steps (the profile's host hooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.core.catalogue import Profile, Target, cmake_flags
from orchestrator.core.devices import expectation
from orchestrator.core.exposure import Exposure, exposure
from orchestrator.core.facts import HostFacts
from orchestrator.core.families import CMakeFlag
from orchestrator.core.memory_plan import MemoryPlan, memory_plan
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.argv import Command
from orchestrator.core.plan.compose import compose_document
from orchestrator.core.plan.container import ContainerSpec, container_spec
from orchestrator.core.plan.host_steps import HostStep, host_steps
from orchestrator.core.plan.image import ImageBuild, image_build
from orchestrator.core.plan.launch_agent import agent_label, launch_agent, library_env, proxy_agent_label
from orchestrator.core.plan.layout import CONTAINER_SOCKET
from orchestrator.core.plan.native import (
    MAX_SOCKET_PATH,
    NativeBuild,
    native_build,
    native_log,
    native_socket,
    native_state_dir,
    proxy_storage,
    socket_guarded,
)
from orchestrator.core.plan.programs import (
    SEED_PROMPT,
    BenchOverride,
    BenchPlan,
    bench_command,
    run_command,
)
from orchestrator.core.plan.proxy import PROXY_PORT, TlsFiles, proxy_config, proxy_config_path, tls_files
from orchestrator.core.plan.server import (
    Address,
    idle_seconds,
    publish_address,
    server_command,
    server_reasoning,
)
from orchestrator.core.reasoning import Reasoning
from orchestrator.core.rpc import Endpoint
from orchestrator.core.settings import Settings, check_settings
from orchestrator.core.sources import Source
from orchestrator.core.speculation import Speculation, Speculative
from orchestrator.core.speculation import resolve as resolve_speculation
from orchestrator.errors import UsageError


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is made from, gathered by orchestrator.app.inputs (the I/O before planning)."""

    target: Target
    profile: Profile
    source: Source
    model: ModelSpec
    settings: Settings
    facts: HostFacts
    detection: str | None = None
    bench_override: BenchOverride | None = None
    prompt: str = SEED_PROMPT


@dataclass(frozen=True)
class Plan:
    target: str
    target_title: str
    profile: str
    runtime: str
    # Where the model must land once loaded (core.devices judges the server's own log against it).
    expects: str
    detection: str | None
    settings: tuple[tuple[str, str, str], ...]
    source: Source
    model: ModelSpec
    cmake_flags: tuple[CMakeFlag, ...]
    build: ImageBuild | NativeBuild
    hooks: tuple[HostStep, ...]
    server: Command
    run: Command
    benches: tuple[BenchPlan, ...]
    compose: Mapping[str, Any] | None
    container: ContainerSpec | None
    endpoint: str
    memory: MemoryPlan
    speculation: Speculation
    # The reasoning level every request gets, and how thoughts come back (core.reasoning).
    reasoning: Reasoning
    # The RPC workers the server spreads the model over (none: this machine alone).
    rpc: tuple[Endpoint, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    # Where executors keep build contexts, logs, native installs and results.
    data_dir: Path
    compose_file: Path | None
    wait_timeout_s: int
    # The user's key file, copied by `up` to the secret the compose file names (never into env or argv).
    api_key_file: Path | None
    publish: Address
    # Who may reach the server and how (TLS, its names, the web origins allowed), and what our own
    # clients trust to check its certificate (None: plain HTTP).
    exposure: Exposure
    trust: Trust | None
    # Caddy's configuration for the proxy in front of the server (a container's or a native one), and
    # where `up` writes it.
    proxy: Mapping[str, Any]
    proxy_file: Path
    # The Unix socket llama-server listens on, the only way to it (the proxy dials it).
    socket: PurePosixPath | Path
    # The compose project the server runs as (several can run side by side under different names).
    project: str
    # What starts the server again after a crash, a logout or a reboot, in words; and on the Mac the
    # per-user launchd agent that does (a LaunchAgent plist's keys).
    supervisor: str
    launch_agent: Mapping[str, Any] | None
    # After how long without a request the server sleeps, its model freed (0: never).
    idle_s: int
    # What the plan was made from, for the fallbacks that make it again with one thing changed.
    inputs: PlanInputs = field(repr=False, compare=False, metadata={"json": False})

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)  # type: ignore[no-any-return]

    @property
    def base_url(self) -> str:
        return self.publish.url

    def origin(self, setting: str) -> str:
        return next(origin for name, _value, origin in self.settings if name == setting)


@dataclass(frozen=True)
class Trust:
    """What a client of ours checks the server's certificate against: the local authority's certificate
    (and the name it reached the server by), or the owner's own certificate itself (reached through
    loopback, where it need not carry that name)."""

    file: Path
    check_name: bool


def _jsonable(value: Any) -> Any:
    if isinstance(value, MemoryPlan):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name)) for f in fields(value) if f.metadata.get("json", True)
        } | _properties(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path | PurePosixPath):
        return str(value)
    return value


def _properties(value: object) -> dict[str, Any]:
    if isinstance(value, Command | HostStep):
        return {"shell": value.shell()}
    return {}


# --- the whole plan ---------------------------------------------------------------------------------


CUDA_ARCHITECTURES = "CMAKE_CUDA_ARCHITECTURES"


def make_plan(inputs: PlanInputs) -> Plan:
    """The plan, decided in steps; each step below is a function named for what it decides."""
    target, profile, source, model = inputs.target, inputs.profile, inputs.source, inputs.model
    settings, facts = inputs.settings, inputs.facts
    check_settings(settings)
    runtime = _runtime(target, settings, facts)
    flags = _cmake_flags(target, profile, settings, runtime)
    build = _build(target, profile, source, settings, flags, facts, runtime)
    speculation = _speculation(settings, profile, model)
    socket = _server_socket(build, facts, settings)
    reasoning = server_reasoning(target, model, source, settings)
    server = server_command(
        target, profile, source, model, settings, runtime, build, speculation, socket, reasoning
    )
    reach = _reach(settings, facts)
    container, compose, compose_warnings = _in_container(
        target, model, facts, build, settings, server, speculation, reach
    )
    proxy = _proxy(build, reach, socket, settings)
    benches = [inputs.bench_override.apply(b) if inputs.bench_override else b for b in profile.benches]
    memory = memory_plan(target, profile, model, settings, facts, benches, speculation)
    data_dir, project = settings.data_dir, settings.project
    return Plan(
        target=target.name,
        target_title=target.title,
        profile=profile.name,
        runtime=runtime,
        expects=expectation(target.devices),
        detection=inputs.detection,
        settings=tuple(settings.rows()),
        source=source,
        model=model,
        cmake_flags=flags,
        build=build,
        hooks=host_steps(profile.hooks, facts),
        server=server,
        run=run_command(target, profile, model, settings, runtime, build, inputs.prompt),
        benches=tuple(bench_command(target, b, source, model, settings, runtime, build) for b in benches),
        compose=compose,
        container=container,
        endpoint=f"{reach.scheme}://{publish_address(reach.public_host)}:{settings.port}/v1",
        memory=memory,
        speculation=speculation,
        reasoning=reasoning,
        rpc=settings.rpc,
        notes=profile.notes + target.notes,
        warnings=_warnings(profile, settings, model, speculation, compose_warnings, reach, memory)
        + ((reasoning.warning,) if reasoning.warning else ()),
        data_dir=data_dir,
        compose_file=data_dir / "compose" / f"{project}.yaml" if compose else None,
        project=project,
        supervisor=_supervisor(runtime, facts, settings),
        launch_agent=_launch_agent(server, build, facts, settings, socket),
        api_key_file=settings.api_key_file.absolute() if settings.api_key_file else None,
        wait_timeout_s=settings.wait_timeout,
        publish=Address(settings.host, settings.port, reach.scheme),
        idle_s=idle_seconds(target, settings),
        exposure=reach,
        trust=_trust(reach, tls_files(data_dir, project)),
        proxy=proxy,
        proxy_file=proxy_config_path(data_dir, project),
        socket=socket,
        inputs=inputs,
    )


def _runtime(target: Target, settings: Settings, facts: HostFacts) -> str:
    """Where the programs run: on the host (a native target, or --native on Linux), else in a container."""
    if settings.native and target.runtime == "container" and facts.system != "Linux":
        raise UsageError("--native on a container target needs a Linux host; drop --native")
    return "native" if settings.native or target.runtime == "native" else "container"


def _cmake_flags(target: Target, profile: Profile, settings: Settings, runtime: str) -> tuple[CMakeFlag, ...]:
    """The build's -D flags, with the CUDA architectures the settings name in place of the target's."""
    flags = cmake_flags(target, profile, native=runtime == "native")
    wanted = settings.cuda_architectures
    if not wanted:
        return flags
    if not any(name == CUDA_ARCHITECTURES for name, _ in flags):
        raise UsageError(f"cuda_architectures is for a CUDA build; target {target.name} builds none: drop it")
    return tuple((name, wanted if name == CUDA_ARCHITECTURES else value) for name, value in flags)


def _build(
    target: Target,
    profile: Profile,
    source: Source,
    settings: Settings,
    flags: tuple[CMakeFlag, ...],
    facts: HostFacts,
    runtime: str,
) -> ImageBuild | NativeBuild:
    """What is built: an image, or an install on the host."""
    if runtime == "container":
        return image_build(target, profile, source, settings, flags, facts.machine)
    return native_build(target, profile, source, settings, flags)


def _speculation(settings: Settings, profile: Profile, model: ModelSpec) -> Speculation:
    """The speculative decoding asked for (the settings', else the profile's), resolved against the model."""
    return resolve_speculation(
        settings.speculative or profile.speculative,
        model.alias,
        model.arch.name if model.arch else None,
        model.arch.n_vocab if model.arch else None,
        model.mtp,
        model.sidecar,
        model.family,
    )


def _server_socket(
    build: ImageBuild | NativeBuild, facts: HostFacts, settings: Settings
) -> PurePosixPath | Path:
    """The Unix socket llama-server listens on: inside its container, or one of the owner's on the host,
    no longer than a socket's path may be."""
    if isinstance(build, ImageBuild):
        return CONTAINER_SOCKET
    socket = native_socket(facts.uid, settings.data_dir, settings.project)
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise UsageError(
            f"the native server's socket {socket} is longer than a Unix socket's path may be "
            f"({len(str(socket))} > {MAX_SOCKET_PATH} characters); give the server a shorter --project"
        )
    return socket


def _reach(settings: Settings, facts: HostFacts) -> Exposure:
    """Who may reach the server and how: its address and port, TLS, its names, the web origins allowed."""
    return exposure(
        settings.host,
        settings.port,
        settings.tls,
        settings.cors,
        settings.host_names,
        hostname=facts.hostname,
        fqdn=facts.fqdn,
        addresses=facts.addresses,
    )


def _in_container(
    target: Target,
    model: ModelSpec,
    facts: HostFacts,
    build: ImageBuild | NativeBuild,
    settings: Settings,
    server: Command,
    speculation: Speculation,
    reach: Exposure,
) -> tuple[ContainerSpec | None, Mapping[str, Any] | None, list[str]]:
    """For an image: the container its programs run in and the compose document that serves it, with
    what the document warns of; for a native build, none."""
    if not isinstance(build, ImageBuild):
        return None, None, []
    container = container_spec(target, model, facts, build, settings, speculation)
    compose, warnings = compose_document(
        target, settings, build, server, container, model, facts, reach.scheme
    )
    return container, compose, warnings


def _proxy(
    build: ImageBuild | NativeBuild, reach: Exposure, socket: PurePosixPath | Path, settings: Settings
) -> Mapping[str, Any]:
    """Caddy's configuration in front of llama-server's socket: in a container of its own beside a
    container's server, or on the host in front of a native one (core.plan.native)."""
    if isinstance(build, ImageBuild):
        return proxy_config(
            reach, f":{PROXY_PORT}", f"unix/{CONTAINER_SOCKET}", fallback_page=settings.ui == "auto"
        )
    secrets = tls_files(settings.data_dir, settings.project)
    return proxy_config(
        reach,
        f"{publish_address(settings.host)}:{settings.port}",
        f"unix/{socket}",
        fallback_page=False,
        certificate=(str(secrets.proxy_cert), str(secrets.proxy_key)),
        storage=str(proxy_storage(settings.data_dir)),
    )


def _warnings(
    profile: Profile,
    settings: Settings,
    model: ModelSpec,
    speculation: Speculation,
    compose_warnings: list[str],
    reach: Exposure,
    memory: MemoryPlan,
) -> tuple[str, ...]:
    """What the plan runs with but the owner should know: speculation off and why, RPC workers the
    profile wants and were not given, plain HTTP beyond loopback, the model missing or unsound, what
    does not fit in memory."""
    warnings = [speculation.fallback] if speculation.fallback else []
    if len(settings.rpc) < profile.rpc_workers:
        warnings.append(
            f"profile {profile.name} spreads the model over {profile.rpc_workers} RPC worker(s); start one "
            "on each machine ('orchestrator worker up') and pass --rpc ADDRESS:PORT"
        )
    warnings += compose_warnings
    if reach.scheme == "http" and not reach.loopback:
        warnings.append(
            f"tls is off on {settings.host}: the API key and every prompt cross the network in clear"
        )
    if not model.present:
        warnings.append(f"model not found at {model.path} ({model.origin})")
    if model.problem:
        warnings.append(f"model: {model.problem}")
    warnings += [f"memory ({row.use}): {row.fit.verdict()}" for row in memory.failing()]
    return tuple(warnings)


def _trust(reach: Exposure, files: TlsFiles) -> Trust | None:
    """What our own clients check the server's certificate against (None: plain HTTP)."""
    if reach.certificate == "local-ca":
        return Trust(files.ca_cert, check_name=True)
    if reach.owner_files is not None:
        return Trust(reach.owner_files[0], check_name=False)
    return None


def _supervisor(runtime: str, facts: HostFacts, settings: Settings) -> str:
    """What starts the server again after a crash or a reboot, in words."""
    if runtime == "container":
        return "Docker: the compose service's restart policy (unless-stopped) starts it again"
    if facts.system == "Darwin":
        return (
            f"launchd: the per-user agents {agent_label(settings.project)} (llama-server) and "
            f"{proxy_agent_label(settings.project)} (its proxy) start them at login and after a crash"
        )
    return (
        "nothing: background processes (llama-server from scripts/macos-native/serve.sh, and Caddy in front "
        "of it) that are not started again after a crash or a reboot"
    )


def _launch_agent(
    server: Command,
    build: ImageBuild | NativeBuild,
    facts: HostFacts,
    settings: Settings,
    socket: PurePosixPath | Path,
) -> Mapping[str, Any] | None:
    """On the Mac, the per-user launchd agent that runs a native server (behind its socket's guard)."""
    if not isinstance(build, NativeBuild) or facts.system != "Darwin":
        return None
    state = native_state_dir(settings.data_dir)
    return launch_agent(
        agent_label(settings.project),
        socket_guarded(server.argv, Path(socket)),
        {**server.env, **library_env(build.prefix)},
        state,
        native_log(settings.data_dir),
    )


# --- fallbacks: the same plan with one thing changed --------------------------------------------------


def with_source(plan: Plan, source: Source) -> Plan:
    """This plan with the same commit from another place (the package-index mirror of a git source)."""
    return make_plan(replace(plan.inputs, source=source))


def with_local_bases(plan: Plan, why: str) -> Plan:
    """This plan built on the bases `orchestrator bases bootstrap` makes here, instead of pulled ones."""
    settings = plan.inputs.settings.with_value("bases", "local", f"fallback: {why}")
    return make_plan(replace(plan.inputs, settings=settings))


def with_model(plan: Plan, model: ModelSpec) -> Plan:
    """This plan once its model file is on disk (the demo model written, a pull finished)."""
    return make_plan(replace(plan.inputs, model=model))


def for_serving_bench(plan: Plan, speculative: Speculative, port: int, *, idle: int | None = None) -> Plan:
    """The server `bench serve` starts for itself: this plan's, with the speculation given (and an idle
    time of its own, for the wake-up benchmark), as its own compose project on a free port, so a server
    that is already up keeps running beside it."""
    origin = "bench serve"
    settings = (
        plan.inputs.settings.with_value("speculative", str(speculative), origin)
        .with_value("project", f"{plan.project}-bench", origin)
        .with_value("port", port, f"{origin}: a free port")
    )
    if idle is not None:
        settings = settings.with_value("idle", idle, origin)
    return make_plan(replace(plan.inputs, settings=settings))
