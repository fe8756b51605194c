"""Resolved settings: defaults < orchestrator.yaml (XDG config, then current directory) < ORCHESTRATOR_* < flags.

Every value remembers where it came from, so `orchestrator plan` can say why it is what it is.
Pure: `merge_layers` parses and checks the layers that orchestrator.app.config reads from files, the
environment and flags.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.exposure import (
    exposure_problem,
    parse_host,
    parse_host_names,
    parse_origins,
    parse_tls,
)
from orchestrator.core.registry import NO_REGISTRY, parse_registry
from orchestrator.core.rpc import parse_workers
from orchestrator.core.speculation import parse_speculative
from orchestrator.errors import ConfigError, UsageError

APP_NAME = "step-flash-orchestrator"


def _as_str(value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError("expected a non-empty string")
    return str(value).strip()


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if number < 0:
        raise ValueError("expected a number >= 0")
    return number


def _as_port(value: object) -> int:
    port = _as_int(value)
    if not 1 <= port <= 65535:
        raise ValueError("expected a port between 1 and 65535")
    return port


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _as_path(value: object) -> Path:
    return (value if isinstance(value, Path) else Path(_as_str(value))).expanduser()


def _as_project(value: object) -> str:
    # Docker Compose's own rule for project names.
    text = _as_str(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", text):
        raise ValueError("expected lowercase letters, digits, '-' and '_', starting with a letter or digit")
    return text


def _as_ui(value: object) -> str:
    """auto (the image's own page, if it has one), off, or a folder of a built web UI to serve (checked
    on disk by app.config.check_ui)."""
    text = _as_str(value)
    if text in {"auto", "off"}:
        return text
    return str(_as_path(text).absolute())


def _as_memory(value: object) -> str:
    """A size as Docker takes it: a whole number of bytes, or with k, m or g."""
    text = _as_str(value).lower()
    if not re.fullmatch(r"[1-9][0-9]*[bkmg]?", text):
        raise ValueError("expected a size such as 48m or 100g")
    return text


def memory_bytes(size: str) -> int:
    """The bytes of a size as _as_memory takes it (48m, 100g, 1024)."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def parse_duration(value: object) -> int:
    """Seconds, from a duration (90s, 30m, 2h, or a whole number of seconds) or off (0)."""
    text = _as_str(value).lower()
    if text in ("off", "0"):
        return 0
    match = re.fullmatch(r"([1-9][0-9]*)([smh]?)", text)
    if not match:
        raise ValueError("expected a duration such as 90s, 30m or 2h, or off")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _as_registry(value: object) -> str:
    return parse_registry(_as_str(value))


def _as_gpu(value: object) -> str:
    text = _as_str(value).replace(" ", "")
    if text != "all" and not re.fullmatch(r"\d+(,\d+)*", text):
        raise ValueError("expected all, or GPU indices such as 0 or 0,1")
    return text


def _as_cuda_architectures(value: object) -> str:
    text = _as_str(value).replace(",", ";")
    if not re.fullmatch(r"\d+[af]?(-real|-virtual)?(;\d+[af]?(-real|-virtual)?)*", text):
        raise ValueError("expected CMake CUDA architectures such as 121a-real or 121a-real;90-real")
    return text


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _as_str(value)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


@dataclass(frozen=True)
class Field:
    name: str
    parse: Callable[[object], Any]
    help: str


FIELDS: tuple[Field, ...] = (
    Field("target", _as_str, "hardware target, or auto to detect it"),
    Field("profile", _as_str, "profile of the target (default, long-context, ...)"),
    Field(
        "source", _as_str, "llama.cpp source: upstream, stepfun-fork, URL@COMMIT[#subdir=DIR] or a directory"
    ),
    Field("model", _as_path, "GGUF file to serve (first split part); default: the target's model"),
    Field("data_dir", _as_path, "where models, results and native builds live"),
    Field("models_dir", _as_path, "where models are downloaded and looked up"),
    Field(
        "host",
        parse_host,
        "the IP address the server is published on (127.0.0.1, 0.0.0.0, this machine's LAN or VPN "
        "address); a host name is resolved once to its address",
    ),
    Field("port", _as_port, "port the server is published on"),
    Field(
        "api_key_file", _as_path, "file holding the API key clients must send (only its owner may read it)"
    ),
    Field(
        "tls",
        parse_tls,
        "HTTPS: auto (whenever the address is not loopback, with a certificate from a local certificate "
        "authority made once per data directory), on (on loopback too), off, or CERT,KEY (your own files)",
    ),
    Field(
        "cors",
        parse_origins,
        "web origins (scheme://host[:port]) whose pages may call the server, e.g. an Open WebUI on another "
        "port; the server's own origin may always, and on loopback any page of localhost",
    ),
    Field(
        "host_names",
        parse_host_names,
        "more names or addresses clients use for this machine (a DNS name, a VPN address): the server "
        "answers to them and its certificate covers them",
    ),
    Field(
        "allow_plain_http",
        _as_bool,
        "serve beyond loopback with tls: off, the API key and prompts in clear (a confirmation)",
    ),
    Field(
        "bases", _choice("upstream", "local"), "base images: upstream (pulled) or local (bootstrapped here)"
    ),
    Field("image_repo", _as_str, "repository name of the images built here"),
    Field(
        "registry",
        _as_registry,
        "where published images are pulled from (and pushed to): a registry and namespace such as "
        "ghcr.io/OWNER, or none to never pull; default: the namespace the release that made this package "
        "pushed its images to (named in its image lock), else none",
    ),
    Field(
        "build",
        _choice("auto", "always", "never"),
        "auto: pull the plan's published image where it is not here, else compile; always: compile, never "
        "pull; never: pull or stop, never compile",
    ),
    Field("image_lock", _as_path, "the lock of published image digests (default: the one in the package)"),
    Field(
        "trust_tag",
        _as_bool,
        "pull a published image by its tag where the lock holds no digest for it, or holds another (a tag "
        "pushed again), and say so each time; without it only an image a release of ours published, by "
        "the digest in its lock, is pulled",
    ),
    Field("project", _as_project, "compose project of the server (several servers run side by side by name)"),
    Field("platform", _choice("linux/amd64", "linux/arm64"), "image platform, overriding the target's"),
    Field("ctx_size", _as_int, "context size, overriding the profile's"),
    Field(
        "speculative",
        parse_speculative,
        "speculative decoding, overriding the profile's: off, mtp (the model's MTP heads), mtp:N (N draft "
        "tokens), or an n-gram type (ngram-mod, ngram-simple, ...; no extra weights)",
    ),
    Field(
        "draft_model", _as_path, "the MTP sidecar GGUF (mtp-*.gguf) for a model whose file lacks its heads"
    ),
    Field(
        "rpc",
        parse_workers,
        "RPC workers the server spreads the model over: ADDRESS:PORT[,ADDRESS:PORT...] ('orchestrator worker "
        "up' on each)",
    ),
    Field("threads", _as_int, "CPU threads for llama.cpp, overriding the profile's"),
    Field(
        "n_predict",
        _as_int,
        "the most tokens the server generates for a request that sets no max_tokens (llama-server's "
        "--n-predict), overriding the target's; 0: no cap",
    ),
    Field("native", _as_bool, "build and run on the host instead of in a container"),
    Field(
        "memory_limit",
        _as_memory,
        "a cap on the server container's memory, swap included (compose mem_limit), e.g. 100g; the kernel "
        "ends the server past it, and status says so",
    ),
    Field(
        "cuda_architectures",
        _as_cuda_architectures,
        "the CUDA architectures to compile for, replacing the target's 121a-real (the DGX Spark's GB10); "
        "e.g. '121a-real;90-real' to run the image on an H100/H200 too",
    ),
    Field(
        "gpu",
        _as_gpu,
        "which of the target's GPUs llama.cpp may use: all, or their indices such as 0 or 0,1 "
        "(CUDA_VISIBLE_DEVICES / GGML_VK_VISIBLE_DEVICES)",
    ),
    Field(
        "gpu_passthrough",
        _as_bool,
        "hand the server's container the target's GPU (/dev/dri, or the NVIDIA reservation); false only for "
        "tests on a machine without that GPU",
    ),
    Field("wait_timeout", _as_int, "seconds to wait for the server to become healthy"),
    Field(
        "idle",
        parse_duration,
        "give the model's memory back after this long without a request (llama-server's sleep; the next "
        "request loads it again): a duration such as 30m, or off; default: the target's",
    ),
    Field(
        "ui",
        _as_ui,
        "llama-server's web page: auto (the one built into the image, if any), off, or a folder of a built "
        "web UI to serve instead (mounted read-only; for air-gapped sites)",
    ),
    Field(
        "build_cache",
        _as_str,
        "BuildKit layer cache shared between builds (cache-from, and cache-to with mode=max), "
        "e.g. type=gha,scope=NAME or type=registry,ref=REGISTRY/cache",
    ),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Layer:
    origin: str
    values: Mapping[str, object]


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Setting]

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value

    def origin(self, name: str) -> str:
        return self.values[name].origin

    def with_value(self, name: str, value: object, origin: str) -> Settings:
        """These settings with one value replaced, saying where the new one came from."""
        parsed = BY_NAME[name].parse(value)
        return Settings({**self.values, name: Setting(parsed, origin)})

    def rows(self) -> list[tuple[str, str, str]]:
        return [(name, _shown(s.value), s.origin) for name, s in self.values.items()]


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def default_layer(data_dir: Path) -> Layer:
    return Layer(
        "default",
        {
            "target": "auto",
            "profile": "default",
            "source": "upstream",
            "model": None,
            "data_dir": data_dir,
            "models_dir": None,
            "host": "127.0.0.1",
            "port": 8080,
            "api_key_file": None,
            "tls": "auto",
            "cors": (),
            "host_names": (),
            "allow_plain_http": False,
            "bases": "upstream",
            "image_repo": "step-flash-llama",
            "registry": NO_REGISTRY,
            "build": "auto",
            "image_lock": None,
            "trust_tag": False,
            "project": "step-flash",
            "platform": None,
            "ctx_size": None,
            "speculative": None,
            "draft_model": None,
            "rpc": (),
            "threads": None,
            "n_predict": None,
            "native": False,
            "memory_limit": None,
            "cuda_architectures": None,
            "gpu": "all",
            "gpu_passthrough": True,
            "wait_timeout": 900,
            "idle": None,
            "ui": "auto",
            "build_cache": None,
        },
    )


def unknown_key_message(key: str, origin: str) -> str:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(FIELD_NAMES)}"
    return f"unknown setting {key!r} in {origin}; {hint}"


def merge_layers(layers: Sequence[Layer]) -> Settings:
    """Later layers win. Values are parsed and checked here, so every source gets the same rules."""
    resolved: dict[str, Setting] = {}
    for layer in layers:
        for key, raw in layer.values.items():
            if key not in BY_NAME:
                raise ConfigError(unknown_key_message(key, layer.origin))
            if raw is None:
                if layer.origin == "default":
                    resolved[key] = Setting(None, layer.origin)
                continue
            try:
                value = BY_NAME[key].parse(raw)
            except ValueError as exc:
                raise ConfigError(f"bad value {raw!r} for {key} in {layer.origin}: {exc}") from None
            resolved[key] = Setting(value, layer.origin)
    if resolved["models_dir"].value is None:
        resolved["models_dir"] = Setting(resolved["data_dir"].value / "models", "default (data_dir/models)")
    return Settings({name: resolved[name] for name in FIELD_NAMES})


def check_settings(settings: Settings, *, key_to_come: bool = False) -> None:
    """What no plan can be made of: exposure without a key (unless the command is about to make one),
    never compiling with nowhere to pull from."""
    if not key_to_come:
        check_exposure(settings)
    if settings["build"] == "never" and settings["registry"] == "none" and not settings["native"]:
        raise UsageError("--no-build needs a registry to pull the image from, and registry is none: set one")


def check_exposure(settings: Settings) -> None:
    """A server reachable from other machines must demand a key, over TLS unless told otherwise."""
    problem = exposure_problem(
        settings["host"], settings["tls"], bool(settings["api_key_file"]), settings["allow_plain_http"]
    )
    if problem:
        raise UsageError(problem)
