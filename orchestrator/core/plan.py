"""Pure planning: target + profile + source + model + settings + host facts -> everything that will run.

Nothing here touches the disk, the network or docker; `orchestrator plan` prints exactly this, and the
executors (engine, native, hooks) carry it out without deciding anything of their own. A plan is made
once per command from its `PlanInputs`; a fallback that changes it (another source, local bases, the
model once written) goes through one of the named `with_*` functions at the end of this module.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from orchestrator.core.bench import expected_rows
from orchestrator.core.catalogue import BenchSet, CMakeFlag, HookSpec, Profile, Target, cmake_flags
from orchestrator.core.cross import build_platform, cross_cmake_flags, cross_packages, is_cross
from orchestrator.core.facts import HostFacts
from orchestrator.core.memory_plan import MemoryPlan, memory_plan
from orchestrator.core.models import ModelSpec
from orchestrator.core.platforms import REFERENCE_PLATFORM, host_platform, platform_arch
from orchestrator.core.rpc import Endpoint, rpc_arg
from orchestrator.core.settings import Settings, check_exposure
from orchestrator.core.sources import Source
from orchestrator.core.speculation import Speculation, Speculative
from orchestrator.core.speculation import resolve as resolve_speculation
from orchestrator.core.speculation import server_args as speculation_server_args
from orchestrator.errors import UsageError

CONTAINER_MODELS_DIR = PurePosixPath("/models")
CONTAINER_PORT = 8080
CONTAINER_API_KEY = PurePosixPath("/run/secrets/api_key")
CONTAINER_UI_DIR = PurePosixPath("/webui")
# An MTP sidecar kept outside the model's folder is mounted here (read-only, like the model).
CONTAINER_DRAFT_DIR = PurePosixPath("/draft")
# Where the image records the GPU driver package it brings and its version (build-llama.sh driver); the
# build reads it back into a label.
CONTAINER_DRIVER_FILE = PurePosixPath("/usr/local/share/step-flash-driver.txt")
# Made by the image for its user (build-llama.sh user): an RPC worker's tensor cache volume is mounted here.
CONTAINER_CACHE_DIR = PurePosixPath("/var/cache/llama")
# RDMA devices (ConnectX with RoCE), given to a head and its workers where the host has them.
INFINIBAND = "/dev/infiniband"
# The runtime images create this user; compose runs the server as it, never as root.
CONTAINER_UID = 10001
SERVICE = "llama-server"
# Built in every image and native install; nothing else of llama.cpp is compiled. `a|b`: the first
# target the source has (llama.cpp renamed rpc-server to ggml-rpc-server in 2026); installed as `a`.
SHIPPED_TOOLS = (
    "llama-server",
    "llama-cli",
    "llama-batched-bench",
    "llama-bench",
    "rpc-server|ggml-rpc-server",
)
SEED_PROMPT = "What's your name?"
# On the server's container: which bytes of the model it was started from.
MODEL_IDENTITY_LABEL = "io.step-flash.model-identity"
SEED_TEMPERATURE = "1.0"


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


@dataclass(frozen=True)
class ImageBuild:
    family: str
    dockerfile: str
    stage: str
    platform: str
    tag: str
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    # A local source is copied into the build context; a git source is fetched inside the build.
    source_dir: str | None
    digest: str
    # Where the build stages run: the image's platform, or the build machine's when cross-compiling.
    build_platform: str
    # BuildKit cache to read and fill (a CI cache); it does not change what is built.
    cache: str | None = None

    @property
    def cross(self) -> bool:
        return is_cross(self.build_platform, self.platform)


@dataclass(frozen=True)
class NativeBuild:
    script: str
    prefix: str
    env: Mapping[str, str]
    digest: str


@dataclass(frozen=True)
class HostStep:
    name: str
    summary: str
    argv: tuple[str, ...]
    needs_root: bool
    # A step that sets a value: how to read it, and the value wanted (run only while it reads lower).
    read: tuple[str, ...] = ()
    wanted: int | None = None
    # Asked even as root (a setting the user should decide), and what to do instead when not run.
    ask_always: bool = False
    alternative: str | None = None

    def shell(self) -> str:
        cmd = shlex.join(self.argv)
        return f"sudo {cmd}" if self.needs_root else cmd


@dataclass(frozen=True)
class BenchPlan:
    name: str
    reference: str | None
    rows: int
    command: Command
    # The parameters the command was written from, so nothing reads them back out of its argv.
    ctx: int
    npp: tuple[int, ...]
    ntg: tuple[int, ...]
    npl: tuple[int, ...]

    def expected(self) -> list[tuple[int, int, int]]:
        """The (pp, tg, pl) rows llama-batched-bench will print for these parameters."""
        return expected_rows(self.ctx, self.npp, self.ntg, self.npl)


@dataclass(frozen=True)
class Address:
    """Where the server answers on the host: the compose port's host side, or the native server's own."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{_publish_address(self.host)}:{self.port}"


@dataclass(frozen=True)
class ContainerSpec:
    """How one-off commands (llama-cli, llama-batched-bench) run: the server's image, devices and
    read-only model mount, as the same unprivileged user."""

    image: str
    volumes: tuple[tuple[str, str, str], ...]
    devices: tuple[str, ...] = ()
    gpus: str | None = None
    group_add: tuple[int, ...] = ()
    user: str = f"{CONTAINER_UID}:{CONTAINER_UID}"
    memlock_unlimited: bool = False
    # "host" when the command reaches RPC workers (their addresses are the host's); None: Docker's default.
    network: str | None = None
    # The same lock-down for the server and for one-off runs (class constants, not per plan).
    read_only: ClassVar[bool] = True
    tmpfs: ClassVar[tuple[str, ...]] = ("/tmp",)
    cap_drop: ClassVar[tuple[str, ...]] = ("ALL",)
    security_opt: ClassVar[tuple[str, ...]] = ("no-new-privileges:true",)


@dataclass(frozen=True)
class BenchOverride:
    """`--npp/--ntg/--npl` for quick runs; the context grows to fit them when it has to."""

    npp: tuple[int, ...] | None = None
    ntg: tuple[int, ...] | None = None
    npl: tuple[int, ...] | None = None

    def apply(self, bench: BenchSet) -> BenchSet:
        npp, ntg, npl = self.npp or bench.npp, self.ntg or bench.ntg, self.npl or bench.npl
        needed = max(npl) * (max(npp) + max(ntg))
        return replace(
            bench,
            npp=npp,
            ntg=ntg,
            npl=npl,
            ctx=max(bench.ctx, needed) if self.npp or self.ntg or self.npl else bench.ctx,
        )


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
    # The compose project the server runs as (several can run side by side under different names).
    project: str
    # What the plan was made from, for the fallbacks that make it again with one thing changed.
    inputs: PlanInputs = field(repr=False, compare=False, metadata={"json": False})

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)  # type: ignore[no-any-return]

    @property
    def base_url(self) -> str:
        return self.publish.url

    def origin(self, setting: str) -> str:
        return next(origin for name, _value, origin in self.settings if name == setting)


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


# --- pieces --------------------------------------------------------------------------------------


def cmake_args(flags: Sequence[CMakeFlag]) -> str:
    return " ".join(f"-D{name}={value}" for name, value in flags)


def _digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def local_base_images(family: str, platform: str, build_platform: str | None = None) -> tuple[str, str]:
    """Tags `orchestrator bases bootstrap` gives the bases it makes without a registry: one pair per
    architecture (the engine keeps one image per tag); amd64's, the first made, keep their short tags.
    Cross-compiling, the build base is the build machine's (build_platform), the runtime base the image's."""

    def suffix(of: str) -> str:
        return "" if of == REFERENCE_PLATFORM else "-" + platform_arch(of).name

    return (
        f"step-flash-base:{family}-build{suffix(build_platform or platform)}",
        f"step-flash-base:{family}-runtime{suffix(platform)}",
    )


def source_build_args(source: Source) -> dict[str, str]:
    return {
        "LLAMA_SOURCE_KIND": source.kind,
        "LLAMA_GIT_URL": source.url or "",
        "LLAMA_GIT_COMMIT": source.commit or "",
        "LLAMA_SOURCE_SUBDIR": source.subdir,
    }


def image_build(
    target: Target,
    profile: Profile,
    source: Source,
    settings: Settings,
    flags: Sequence[CMakeFlag],
    machine: str,
) -> ImageBuild:
    family = target.family
    assert family is not None
    here = host_platform(machine) if target.follows_host else None
    platform = settings["platform"] or here or target.platform
    builder = build_platform(family, platform, machine)
    packages = family.build_packages
    if is_cross(builder, platform):
        packages += cross_packages(family, platform_arch(platform))
        flags = (*flags, *cross_cmake_flags(platform_arch(platform)))
    if settings["bases"] == "local":
        build_base, runtime_base = local_base_images(family.name, platform, builder)
    else:
        build_base, runtime_base = family.build_base, family.runtime_base
    args = {
        "BUILD_BASE": build_base,
        "RUNTIME_BASE": runtime_base,
        "BUILD_PACKAGES": " ".join(packages),
        "RUNTIME_PACKAGES": " ".join(family.runtime_packages),
        "DRIVER_PACKAGE": family.driver_package or "",
        "DRIVER_FILE": str(CONTAINER_DRIVER_FILE),
        **source_build_args(source),
        "CMAKE_ARGS": cmake_args(flags),
        "LLAMA_TARGETS": " ".join(SHIPPED_TOOLS),
        "LLAMA_BUILD_COMMIT": source.short_revision,
        "LLAMA_UID": str(CONTAINER_UID),
        "LLAMA_CACHE_DIR": str(CONTAINER_CACHE_DIR),
        "SERVER_PORT": str(CONTAINER_PORT),
    }
    variant = f"-{profile.variant.name}" if profile.variant else ""
    # A target built for another architecture than its own (a DGX Spark image built on amd64) says so.
    arch = "" if platform == target.platform else "-" + platform_arch(platform).name
    tag = f"{settings['image_repo']}:{family.name}-{target.name}{variant}{arch}-{source.short_revision}"
    # Where the source comes from (git, a local copy, a mirror) does not change the image: its commit does.
    location = set(source_build_args(source))
    digest = _digest(
        {
            "platform": platform,
            "dockerfile": family.dockerfile,
            "args": {k: v for k, v in args.items() if k not in location},
            "revision": source.revision or source.commit,
        }
    )
    labels = {
        "org.opencontainers.image.title": f"llama.cpp for {target.title}",
        "org.opencontainers.image.source": source.url or str(source.path),
        "org.opencontainers.image.revision": source.commit or source.revision or "",
        "io.step-flash.target": target.name,
        "io.step-flash.variant": profile.variant.name if profile.variant else "",
        "io.step-flash.cmake-flags": cmake_args(flags),
        "io.step-flash.plan-digest": digest,
    }
    return ImageBuild(
        family=family.name,
        dockerfile=family.dockerfile,
        stage="runtime",
        platform=platform,
        tag=tag,
        build_args=args,
        labels=labels,
        source_dir=str(source.path) if source.kind == "local" else None,
        digest=digest,
        build_platform=builder,
        cache=settings["build_cache"],
    )


def native_build(
    target: Target, profile: Profile, source: Source, settings: Settings, flags: Sequence[CMakeFlag]
) -> NativeBuild:
    env = {
        **source_build_args(source),
        "LLAMA_SOURCE_DIR": str(source.path) if source.path else "",
        "CMAKE_ARGS": cmake_args(flags),
        "LLAMA_TARGETS": " ".join(SHIPPED_TOOLS),
        "LLAMA_BUILD_COMMIT": source.short_revision,
    }
    digest = _digest({"target": target.name, "env": env, "revision": source.revision or source.commit})
    prefix = Path(settings["data_dir"]) / "native" / f"{target.name}-{source.short_revision}-{digest[:8]}"
    return NativeBuild(
        script="scripts/macos-native/build.sh",
        prefix=str(prefix),
        env={**env, "PREFIX": str(prefix)},
        digest=digest,
    )


def _mmap_args(mmap: bool | None, source: Source) -> list[str]:
    if mmap is None:
        return []
    if source.mmap_syntax == "mmap":
        return ["--mmap" if mmap else "--no-mmap"]
    return ["--load-mode", "mmap" if mmap else "none"]


def _kv_args(cache_k: str | None, cache_v: str | None) -> list[str]:
    return (["-ctk", cache_k] if cache_k else []) + (["-ctv", cache_v] if cache_v else [])


def _context_args(profile: Profile, settings: Settings) -> list[str]:
    """Context, batch, micro-batch, flash attention and KV cache types: the profile's core."""
    return [
        "-c", str(settings["ctx_size"] or profile.ctx),
        "-b", str(profile.batch),
        "-ub", str(profile.ubatch),
        "-fa", profile.flash_attn,
        *_kv_args(profile.cache_type_k, profile.cache_type_v),
    ]  # fmt: skip


def _template_args(model: ModelSpec) -> list[str]:
    # A built-in template is named, not written in Jinja: llama.cpp takes names only without --jinja.
    return ["--no-jinja", "--chat-template", model.chat_template] if model.chat_template else []


def _model_arg(model: ModelSpec, runtime: str) -> str:
    return str(CONTAINER_MODELS_DIR / model.path.name) if runtime == "container" else str(model.path)


def _binary(name: str, build: ImageBuild | NativeBuild) -> str:
    return str(Path(build.prefix) / "bin" / name) if isinstance(build, NativeBuild) else name


def _threads(profile_threads: int | None, settings: Settings) -> list[str]:
    threads = settings["threads"] or profile_threads
    return ["-t", str(threads)] if threads else []


def server_command(
    target: Target,
    profile: Profile,
    source: Source,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
    speculation: Speculation,
) -> Command:
    in_container = runtime == "container"
    # With RPC workers the server's container shares the host's network (see compose_document), so it
    # binds the published address itself.
    bridged = in_container and not settings["rpc"]
    argv = [
        _binary("llama-server", build),
        "--host",
        "0.0.0.0" if bridged else settings["host"],
        "--port",
        str(CONTAINER_PORT if bridged else settings["port"]),
        "-m",
        _model_arg(model, runtime),
        "--alias",
        model.alias,
        *_context_args(profile, settings),
        *_mmap_args(profile.mmap, source),
        *_threads(profile.threads, settings),
        *(arg for arg in target.server_args if not (model.chat_template and arg == "--jinja")),
    ]
    argv += _template_args(model)
    argv += _speculation_args(profile, speculation, model, runtime)
    if settings["rpc"]:
        # Spread over machines, the log says which device (worker) got which layers and how much: llama.cpp
        # prints that at verbosity 4 (about 40 more lines a request).
        argv += [*rpc_arg(settings["rpc"]), "-lv", "4"]
    if settings["api_key_file"]:
        argv += ["--api-key-file", str(CONTAINER_API_KEY) if in_container else str(settings["api_key_file"])]
    argv += _ui_args(settings["ui"], in_container)
    return Command(tuple(argv), {**target.env, **profile.env})


def _speculation_args(
    profile: Profile, speculation: Speculation, model: ModelSpec, runtime: str
) -> list[str]:
    sidecar = None
    if speculation.sidecar is not None:
        sidecar = str(
            speculation.sidecar
            if runtime != "container"
            else _container_dir(speculation.sidecar, model) / speculation.sidecar.name
        )
    args = speculation_server_args(speculation, profile.cache_type_k, profile.cache_type_v, sidecar)
    if speculation.active and profile.speculative_slots:
        args += ["-np", str(profile.speculative_slots)]
    return args


def _container_dir(sidecar: Path, model: ModelSpec) -> PurePosixPath:
    """Where a sidecar is inside the container: beside the model, or in its own read-only mount."""
    return CONTAINER_MODELS_DIR if sidecar.parent == model.directory else CONTAINER_DRAFT_DIR


def _ui_args(ui: str, in_container: bool) -> list[str]:
    if ui == "off":
        return ["--no-webui"]
    if ui == "auto":
        return []
    return ["--path", str(CONTAINER_UI_DIR) if in_container else ui]


def run_command(
    target: Target,
    profile: Profile,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
    prompt: str = SEED_PROMPT,
) -> Command:
    argv = [
        _binary("llama-cli", build),
        "-m",
        _model_arg(model, runtime),
        *_context_args(profile, settings),
        *_threads(profile.threads, settings),
        "--temp",
        SEED_TEMPERATURE,
        "-p",
        prompt,
        *(["-n", str(model.max_tokens)] if model.max_tokens else []),
        # llama-cli is an interactive chat by default; one answer, then exit.
        "--single-turn",
        *rpc_arg(settings["rpc"]),
    ]
    argv += _template_args(model)
    return Command(tuple(argv), {**target.env, **profile.env})


def bench_command(
    target: Target,
    bench: BenchSet,
    source: Source,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
) -> BenchPlan:
    def csv(values: tuple[int, ...]) -> str:
        return ",".join(str(v) for v in values)

    argv = [
        _binary("llama-batched-bench", build),
        "-m",
        _model_arg(model, runtime),
        "-c",
        str(bench.ctx),
        "-b",
        str(bench.batch),
        "-ub",
        str(bench.ubatch),
        "-npp",
        csv(bench.npp),
        "-ntg",
        csv(bench.ntg),
        "-npl",
        csv(bench.npl),
        *_kv_args(bench.cache_type_k, bench.cache_type_v),
        *_mmap_args(bench.mmap, source),
        *_threads(bench.threads, settings),
        *rpc_arg(settings["rpc"]),
        "--output-format",
        "jsonl",
    ]
    rows = len(bench.npp) * len(bench.ntg) * len(bench.npl)
    return BenchPlan(
        bench.name,
        bench.reference,
        rows,
        Command(tuple(argv), {**target.env, **bench.env}),
        ctx=bench.ctx,
        npp=bench.npp,
        ntg=bench.ntg,
        npl=bench.npl,
    )


def container_spec(
    target: Target,
    model: ModelSpec,
    facts: HostFacts,
    build: ImageBuild,
    settings: Settings,
    speculation: Speculation,
) -> ContainerSpec:
    ui = settings["ui"]
    ui_mount = () if ui in ("auto", "off") else ((ui, str(CONTAINER_UI_DIR), "ro"),)
    sidecar = speculation.sidecar
    draft_mount = (
        ((str(sidecar.parent), str(CONTAINER_DRAFT_DIR), "ro"),)
        if sidecar is not None and _container_dir(sidecar, model) == CONTAINER_DRAFT_DIR
        else ()
    )
    return ContainerSpec(
        image=build.tag,
        volumes=((str(model.directory), str(CONTAINER_MODELS_DIR), "ro"), *ui_mount, *draft_mount),
        devices=("/dev/dri:/dev/dri",) if target.devices == "dri" else (),
        gpus="all" if target.devices == "nvidia" else None,
        group_add=tuple(g for g in (facts.render_gid, facts.video_gid) if g is not None)
        if target.devices == "dri"
        else (),
        memlock_unlimited=target.devices == "nvidia",
        network="host" if settings["rpc"] else None,
    )


def host_steps(hooks: Sequence[HookSpec], facts: HostFacts) -> tuple[HostStep, ...]:
    steps = []
    for hook in hooks:
        if hook.kind == "drop-page-cache":
            steps.append(
                HostStep(
                    "drop-page-cache",
                    "write dirty pages and drop the page cache so the model's memory is free before it loads",
                    ("sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"),
                    needs_root=not facts.is_root,
                )
            )
        elif hook.kind == "wired-limit":
            steps.append(
                HostStep(
                    "wired-limit",
                    f"let Metal wire up to {hook.value} MB (resets at reboot)",
                    ("sysctl", f"iogpu.wired_limit_mb={hook.value}"),
                    needs_root=not facts.is_root,
                    read=("sysctl", "-n", "iogpu.wired_limit_mb"),
                    wanted=hook.value,
                    ask_always=True,
                    alternative=hook.alternative,
                )
            )
    return tuple(steps)


def _publish_address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def compose_document(
    target: Target,
    settings: Settings,
    build: ImageBuild,
    server: Command,
    container: ContainerSpec,
    model: ModelSpec,
    facts: HostFacts,
) -> tuple[dict[str, Any], list[str]]:
    """The server's service: the container spec's image, mounts, user, devices and lock-down, plus
    what only a long-running service has (port, restart, health check, logs, secret)."""
    warnings: list[str] = []
    workers = settings["rpc"]
    health_port = settings["port"] if workers else CONTAINER_PORT
    health_host = "127.0.0.1" if not workers or settings["host"] in ("0.0.0.0", "::") else settings["host"]
    service: dict[str, Any] = {
        "image": container.image,
        "command": list(server.argv),
        "environment": dict(server.env),
        "volumes": [
            {"type": "bind", "source": source, "target": target_dir, "read_only": mode == "ro"}
            for source, target_dir, mode in container.volumes
        ],
        **service_lockdown(container),
        "healthcheck": {
            "test": ["CMD", "curl", "-fsS", f"http://{_publish_address(health_host)}:{health_port}/health"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{settings['wait_timeout']}s",
        },
        "labels": {"io.step-flash.target": target.name, "io.step-flash.plan-digest": build.digest}
        | ({MODEL_IDENTITY_LABEL: model.identity} if model.identity else {}),
    }
    if workers:
        # The workers' addresses (a direct link, or loopback) are the host's; RDMA needs its devices.
        service["network_mode"] = "host"
    else:
        service["ports"] = [f"{_publish_address(settings['host'])}:{settings['port']}:{CONTAINER_PORT}"]
    service |= service_devices(container, infiniband=bool(workers) and bool(facts.infiniband_nodes))
    if container.devices and not container.group_add:
        warnings.append("no render/video group on this host: the container may not open /dev/dri")
    document: dict[str, Any] = {"name": settings["project"], "services": {SERVICE: service}}
    if settings["api_key_file"]:
        service["secrets"] = [{"source": "api_key", "target": str(CONTAINER_API_KEY)}]
        document["secrets"] = {"api_key": {"file": str(secret_copy_path(Path(settings["data_dir"])))}}
    return document, warnings


def service_lockdown(container: ContainerSpec) -> dict[str, Any]:
    """What every long-running service of ours has: the image's unprivileged user, a read-only root with
    a /tmp of its own, no capabilities, no new privileges, a restart policy and rotated logs."""
    return {
        "user": container.user,
        "read_only": container.read_only,
        "tmpfs": list(container.tmpfs),
        "cap_drop": list(container.cap_drop),
        "security_opt": list(container.security_opt),
        "restart": "unless-stopped",
        "logging": {"driver": "json-file", "options": {"max-size": "20m", "max-file": "3"}},
    }


def service_devices(container: ContainerSpec, *, infiniband: bool) -> dict[str, Any]:
    """The target's GPU (an NVIDIA reservation, or /dev/dri with its groups), RDMA devices where used,
    and unlimited locked memory where either needs it."""
    entries: dict[str, Any] = {}
    if container.gpus:
        gpu = {"driver": "nvidia", "count": container.gpus, "capabilities": ["gpu"]}
        entries["deploy"] = {"resources": {"reservations": {"devices": [gpu]}}}
    if container.memlock_unlimited or infiniband:
        entries["ulimits"] = {"memlock": {"soft": -1, "hard": -1}}
    devices = [*container.devices, *([f"{INFINIBAND}:{INFINIBAND}"] if infiniband else [])]
    if devices:
        entries["devices"] = devices
    if container.devices and container.group_add:
        entries["group_add"] = list(container.group_add)
    return entries


def secret_copy_path(data_dir: Path) -> Path:
    """Where `up` copies the API key: readable by the container's user, inside a folder only we open."""
    return data_dir / "secrets" / "api_key"


# --- the whole plan ---------------------------------------------------------------------------------


def make_plan(inputs: PlanInputs) -> Plan:
    target, profile, source, model = inputs.target, inputs.profile, inputs.source, inputs.model
    settings, facts, bench_override = inputs.settings, inputs.facts, inputs.bench_override
    check_exposure(settings)
    if settings["native"] and target.runtime == "container" and facts.system != "Linux":
        raise UsageError("--native on a container target needs a Linux host; drop --native")
    runtime = "native" if settings["native"] or target.runtime == "native" else "container"
    flags = cmake_flags(target, profile, native=runtime == "native")
    warnings: list[str] = []
    build: ImageBuild | NativeBuild
    if runtime == "container":
        build = image_build(target, profile, source, settings, flags, facts.machine)
    else:
        build = native_build(target, profile, source, settings, flags)
    speculation = resolve_speculation(
        settings["speculative"] or profile.speculative,
        model.alias,
        model.arch.name if model.arch else None,
        model.arch.n_vocab if model.arch else None,
        model.mtp,
        model.sidecar,
    )
    if speculation.fallback:
        warnings.append(speculation.fallback)
    if len(settings["rpc"]) < profile.rpc_workers:
        warnings.append(
            f"profile {profile.name} spreads the model over {profile.rpc_workers} RPC worker(s); start one "
            "on each machine ('orchestrator worker up') and pass --rpc ADDRESS:PORT"
        )
    server = server_command(target, profile, source, model, settings, runtime, build, speculation)
    compose = None
    container = None
    if isinstance(build, ImageBuild):
        container = container_spec(target, model, facts, build, settings, speculation)
        compose, compose_warnings = compose_document(target, settings, build, server, container, model, facts)
        warnings += compose_warnings
    benches = [bench_override.apply(b) if bench_override else b for b in profile.benches]
    if not model.present:
        warnings.append(f"model not found at {model.path} ({model.origin})")
    if model.problem:
        warnings.append(f"model: {model.problem}")
    memory = memory_plan(target, profile, model, settings, facts, benches, speculation)
    warnings += [f"memory ({row.use}): {row.fit.verdict()}" for row in memory.failing()]
    return Plan(
        target=target.name,
        target_title=target.title,
        profile=profile.name,
        runtime=runtime,
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
        endpoint=Address(settings["host"], settings["port"]).url + "/v1",
        memory=memory,
        speculation=speculation,
        rpc=settings["rpc"],
        notes=profile.notes + target.notes,
        warnings=tuple(warnings),
        data_dir=Path(settings["data_dir"]),
        compose_file=Path(settings["data_dir"]) / "compose" / f"{settings['project']}.yaml"
        if compose
        else None,
        project=settings["project"],
        api_key_file=Path(settings["api_key_file"]).absolute() if settings["api_key_file"] else None,
        wait_timeout_s=settings["wait_timeout"],
        publish=Address(settings["host"], settings["port"]),
        inputs=inputs,
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


def for_serving_bench(plan: Plan, speculative: Speculative, port: int) -> Plan:
    """The server `bench serve` starts for itself: this plan's, with the speculation given, as its own
    compose project on a free port, so a server that is already up keeps running beside it."""
    origin = "bench serve"
    settings = (
        plan.inputs.settings.with_value("speculative", str(speculative), origin)
        .with_value("project", f"{plan.project}-bench", origin)
        .with_value("port", port, f"{origin}: a free port")
    )
    return make_plan(replace(plan.inputs, settings=settings))
