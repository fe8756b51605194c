"""The server: llama-server's command line (address, model, profile, speculation, RPC workers, the API
key as a file, the web page) and the address it answers on from the host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.exposure import connect_host
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.argv import (
    DEVICE_LOG,
    Command,
    binary,
    context_args,
    mmap_args,
    model_arg,
    program_env,
    template_args,
    thread_args,
)
from orchestrator.core.plan.container import projector_arg, sidecar_dir
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import (
    CONTAINER_API_KEY,
    CONTAINER_PORT,
    CONTAINER_UI_DIR,
)
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.reasoning import Reasoning, resolve_reasoning
from orchestrator.core.rpc import rpc_arg
from orchestrator.core.settings import Settings
from orchestrator.core.sources import UPSTREAM_COMMIT, Source
from orchestrator.core.speculation import Speculation
from orchestrator.core.speculation import server_args as speculation_server_args


@dataclass(frozen=True)
class Address:
    """Where the server answers on the host (the proxy's published port, or the native server's own),
    and whether over TLS."""

    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        """Where a client on this machine reaches it (a wildcard bind: through loopback)."""
        return f"{self.scheme}://{publish_address(connect_host(self.host))}:{self.port}"


def publish_address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def server_command(
    target: Target,
    profile: Profile,
    source: Source,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
    speculation: Speculation,
    socket: PurePosixPath | Path,
    reasoning: Reasoning,
) -> Command:
    """llama-server's command; it listens on socket only (a Unix socket its proxy dials)."""
    in_container = runtime == "container"
    # The proxy is published and llama-server listens for it alone, on a Unix socket: in a container one
    # only the proxy's container shares (core.plan.compose), on the host one in a folder only its owner
    # opens. No TCP port anything else could reach.
    argv = [
        binary("llama-server", build),
        "--host",
        str(socket),
        "--port",
        str(CONTAINER_PORT),
        "-m",
        model_arg(model, runtime),
        "--alias",
        model.alias,
        *context_args(profile, settings),
        *mmap_args(profile.mmap, source),
        *thread_args(profile.threads, settings),
        *(arg for arg in target.server_args if not (model.chat_template and arg == "--jinja")),
        *_reply_cap(target, settings),
    ]
    argv += template_args(model)
    argv += projector_arg(model, runtime)
    argv += reasoning.server_args()
    argv += _speculation_args(profile, speculation, model, runtime)
    argv += rpc_arg(settings.rpc)
    argv += _idle_args(target, settings)
    argv += list(DEVICE_LOG)
    # llama-server's own CORS rule lets every origin in; behind the proxy (which answers CORS itself and
    # drops these headers) only pages of localhost, should a request ever reach it another way.
    argv += ["--cors-origins", "localhost"]
    if settings.api_key_file:
        argv += ["--api-key-file", str(CONTAINER_API_KEY) if in_container else str(settings.api_key_file)]
    argv += _ui_args(settings.ui, in_container)
    return Command(tuple(argv), program_env(target, settings, profile.env))


def _speculation_args(
    profile: Profile, speculation: Speculation, model: ModelSpec, runtime: str
) -> list[str]:
    sidecar = None
    if speculation.sidecar is not None:
        sidecar = str(
            speculation.sidecar
            if runtime != "container"
            else sidecar_dir(speculation.sidecar, model) / speculation.sidecar.name
        )
    args = speculation_server_args(speculation, profile.cache_type_k, profile.cache_type_v, sidecar)
    if speculation.active and profile.speculative_slots:
        args += ["-np", str(profile.speculative_slots)]
    return args


def server_reasoning(target: Target, model: ModelSpec, source: Source, settings: Settings) -> Reasoning:
    """The reasoning the server runs: the level asked for, where the model's template is Jinja (the
    target's --jinja, unless the model is served with a built-in template by name)."""
    jinja = "--jinja" in target.server_args and not model.chat_template
    pinned = UPSTREAM_COMMIT in (source.commit, source.revision)
    return resolve_reasoning(settings.reasoning, jinja=jinja, source=source.name, source_checked=pinned)


def argv_address(argv: Sequence[str]) -> Address | None:
    """Where a llama-server command line binds (--host, --port); None when it names no address, or a
    Unix socket."""
    if "--host" not in argv or "--port" not in argv or argv[argv.index("--host") + 1].endswith(".sock"):
        return None
    return Address(argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1]))


def _reply_cap(target: Target, settings: Settings) -> list[str]:
    cap = target.n_predict if settings.n_predict is None else settings.n_predict
    return ["--n-predict", str(cap)] if cap else []


def idle_seconds(target: Target, settings: Settings) -> int:
    """After how long without a request the server sleeps (0: never): the idle setting, or the target's."""
    return target.idle_s if settings.idle is None else settings.idle


def _idle_args(target: Target, settings: Settings) -> list[str]:
    idle = idle_seconds(target, settings)
    return ["--sleep-idle-seconds", str(idle)] if idle else []


def _ui_args(ui: str, in_container: bool) -> list[str]:
    if ui == "off":
        return ["--no-webui"]
    if ui == "auto":
        return []
    return ["--path", str(CONTAINER_UI_DIR) if in_container else ui]
