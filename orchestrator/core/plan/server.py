"""The server: llama-server's command line (address, model, profile, speculation, RPC workers, the API
key as a file, the web page) and the address it answers on from the host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.catalogue import Profile, Target
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
from orchestrator.core.plan.container import sidecar_dir
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import CONTAINER_API_KEY, CONTAINER_PORT, CONTAINER_UI_DIR
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.rpc import rpc_arg
from orchestrator.core.settings import Settings
from orchestrator.core.sources import Source
from orchestrator.core.speculation import Speculation
from orchestrator.core.speculation import server_args as speculation_server_args


@dataclass(frozen=True)
class Address:
    """Where the server answers on the host: the compose port's host side, or the native server's own."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{publish_address(self.host)}:{self.port}"


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
) -> Command:
    in_container = runtime == "container"
    # With RPC workers the server's container shares the host's network (see compose_document), so it
    # binds the published address itself.
    bridged = in_container and not settings["rpc"]
    argv = [
        binary("llama-server", build),
        "--host",
        "0.0.0.0" if bridged else settings["host"],
        "--port",
        str(CONTAINER_PORT if bridged else settings["port"]),
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
    argv += _speculation_args(profile, speculation, model, runtime)
    argv += rpc_arg(settings["rpc"])
    argv += list(DEVICE_LOG)
    if settings["api_key_file"]:
        argv += ["--api-key-file", str(CONTAINER_API_KEY) if in_container else str(settings["api_key_file"])]
    argv += _ui_args(settings["ui"], in_container)
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


def argv_address(argv: Sequence[str]) -> Address | None:
    """Where a llama-server command line binds (--host, --port); None when it names no address."""
    if "--host" not in argv or "--port" not in argv:
        return None
    return Address(argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1]))


def _reply_cap(target: Target, settings: Settings) -> list[str]:
    cap = target.n_predict if settings["n_predict"] is None else settings["n_predict"]
    return ["--n-predict", str(cap)] if cap else []


def _ui_args(ui: str, in_container: bool) -> list[str]:
    if ui == "off":
        return ["--no-webui"]
    if ui == "auto":
        return []
    return ["--path", str(CONTAINER_UI_DIR) if in_container else ui]
