"""A command to run (argv and environment), and the llama.cpp arguments the server, llama-cli and
llama-batched-bench share: the model's path, context and batches, KV cache types, threads, loading."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.devices import NEEDS
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import CONTAINER_MODELS_DIR
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.settings import Settings
from orchestrator.core.sources import Source


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def mmap_args(mmap: bool | None, source: Source) -> list[str]:
    if mmap is None:
        return []
    if source.mmap_syntax == "mmap":
        return ["--mmap" if mmap else "--no-mmap"]
    return ["--load-mode", "mmap" if mmap else "none"]


def kv_args(cache_k: str | None, cache_v: str | None) -> list[str]:
    return (["-ctk", cache_k] if cache_k else []) + (["-ctv", cache_v] if cache_v else [])


def context_args(profile: Profile, settings: Settings) -> list[str]:
    """Context, batch, micro-batch, flash attention and KV cache types: the profile's core."""
    return [
        "-c", str(settings.ctx_size or profile.ctx),
        "-b", str(profile.batch),
        "-ub", str(profile.ubatch),
        "-fa", profile.flash_attn,
        *kv_args(profile.cache_type_k, profile.cache_type_v),
    ]  # fmt: skip


def template_args(model: ModelSpec) -> list[str]:
    # A built-in template is named, not written in Jinja: llama.cpp takes names only without --jinja.
    return ["--no-jinja", "--chat-template", model.chat_template] if model.chat_template else []


def model_arg(model: ModelSpec, runtime: str) -> str:
    return str(CONTAINER_MODELS_DIR / model.path.name) if runtime == "container" else str(model.path)


def binary(name: str, build: ImageBuild | NativeBuild) -> str:
    return str(Path(build.prefix) / "bin" / name) if isinstance(build, NativeBuild) else name


def thread_args(profile_threads: int | None, settings: Settings) -> list[str]:
    threads = settings.threads or profile_threads
    return ["-t", str(threads)] if threads else []


# llama.cpp logs which devices hold the model (the `using device` lines, every buffer's size and device)
# at verbosity 4 only: libllama's info lines are its trace level (common/log.cpp). The server then logs
# about 40 more lines a request; a command reads its own device lines from that (orchestrator.core.devices).
DEVICE_LOG = ("-lv", "4")


def program_env(target: Target, settings: Settings, own: Mapping[str, str]) -> dict[str, str]:
    """A llama.cpp program's environment: the target's, the GPUs it may use (the gpu setting), its own."""
    env = dict(target.env)
    need = NEEDS.get(target.devices)
    if settings.gpu != "all" and need is not None and need.visible_env:
        env[need.visible_env] = settings.gpu
    return {**env, **own}
