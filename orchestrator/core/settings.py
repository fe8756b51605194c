"""Resolved settings: defaults < orchestrator.yaml (XDG config, then current directory) < ORCHESTRATOR_* < flags.

`Settings` is a typed value: one field per setting, declared with its type, its parser and its help
(`_setting`), so mypy checks every read (`settings.port` is an int). Every value remembers where it came
from, so `orchestrator plan` can say why it is what it is. Pure: `merge_layers`, the one way Settings are
made, parses and checks the layers that orchestrator.app.config reads from files, the environment and
flags.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

from orchestrator.core.exposure import (
    exposure_problem,
    parse_host,
    parse_host_names,
    parse_origins,
    parse_tls,
)
from orchestrator.core.reasoning import parse_level
from orchestrator.core.registry import NO_REGISTRY, parse_registry
from orchestrator.core.rpc import Endpoint, parse_workers
from orchestrator.core.speculation import Speculative, parse_speculative
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


# --mmproj none: serve the model text only, whatever projector lies beside it.
NO_PROJECTOR = "none"


def _as_mmproj(value: object) -> str:
    """none (text only), or the path of a vision projector GGUF (read and checked by models.local)."""
    text = _as_str(value)
    return NO_PROJECTOR if text.lower() == NO_PROJECTOR else str(_as_path(text).absolute())


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


def _one_of(choices: tuple[str, ...], value: object) -> str:
    text = _as_str(value)
    if text not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}")
    return text


# The field makers below run once, while the module loads (the class body of Settings): mutation testing
# (scripts/mutation.sh) could switch none of their mutants on, so it leaves them be. The checks they hand
# on (_one_of, the parsers) run per value and are mutated.
def _choice(*choices: str) -> Callable[[object], str]:  # pragma: no mutate block
    return partial(_one_of, choices)


T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """What a setting's field carries beside its type: how a value from any source is read (the parser's
    result is the field's type), what the setting does, and its default (per machine: given by
    default_layer and merge_layers)."""

    parse: Callable[[object], object]
    help: str
    default: object = None
    per_machine: bool = False


def _setting(parse: Callable[[object], T], help: str, default: T) -> T:  # pragma: no mutate block
    # A Field at run time; typed as its value so that mypy holds parse, default and annotation together.
    return cast(T, field(metadata={"spec": Spec(parse, help, default)}))


def _optional(parse: Callable[[object], T], help: str) -> T | None:  # pragma: no mutate block
    """A setting that is None until a source sets it."""
    return cast("T | None", field(metadata={"spec": Spec(parse, help, None)}))


def _per_machine(parse: Callable[[object], T], help: str) -> T:  # pragma: no mutate block
    """A setting whose default is this machine's (default_layer, merge_layers)."""
    return cast(T, field(metadata={"spec": Spec(parse, help, per_machine=True)}))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One field per setting, with its type; made only by merge_layers, from layers of raw values."""

    # Where each value came from (a file, an environment variable, a flag, default), by setting name.
    origins: Mapping[str, str] = field(repr=False)

    target: str = _setting(_as_str, "hardware target, or auto to detect it", "auto")
    profile: str = _setting(_as_str, "profile of the target (default, long-context, ...)", "default")
    source: str = _setting(
        _as_str,
        "llama.cpp source: upstream, stepfun-fork, URL@COMMIT[#subdir=DIR] or a directory",
        "upstream",
    )
    model: Path | None = _optional(
        _as_path, "GGUF file to serve (first split part); default: the target's model"
    )
    data_dir: Path = _per_machine(_as_path, "where models, results and native builds live")
    models_dir: Path = _per_machine(
        _as_path, "where models are downloaded and looked up (default: data_dir/models)"
    )
    host: str = _setting(
        parse_host,
        "the IP address the server is published on (127.0.0.1, 0.0.0.0, this machine's LAN or VPN "
        "address); a host name is resolved once to its address",
        "127.0.0.1",
    )
    port: int = _setting(_as_port, "port the server is published on", 8080)
    api_key_file: Path | None = _optional(
        _as_path, "file holding the API key clients must send (only its owner may read it)"
    )
    tls: str = _setting(
        parse_tls,
        "HTTPS: auto (whenever the address is not loopback, with a certificate from a local certificate "
        "authority made once per data directory), on (on loopback too), off, or CERT,KEY (your own files)",
        "auto",
    )
    cors: tuple[str, ...] = _setting(
        parse_origins,
        "web origins (scheme://host[:port]) whose pages may call the server, e.g. an Open WebUI on another "
        "port; the server's own origin may always, and on loopback any page of localhost",
        (),
    )
    host_names: tuple[str, ...] = _setting(
        parse_host_names,
        "more names or addresses clients use for this machine (a DNS name, a VPN address): the server "
        "answers to them and its certificate covers them",
        (),
    )
    allow_plain_http: bool = _setting(
        _as_bool,
        "serve beyond loopback with tls: off, the API key and prompts in clear (a confirmation)",
        False,
    )
    bases: str = _setting(
        _choice("upstream", "local"),
        "base images: upstream (pulled) or local (bootstrapped here)",
        "upstream",
    )
    image_repo: str = _setting(_as_str, "repository name of the images built here", "step-flash-llama")
    registry: str = _setting(
        _as_registry,
        "where published images are pulled from (and pushed to): a registry and namespace such as "
        "ghcr.io/OWNER, or none to never pull; default: the namespace the release that made this package "
        "pushed its images to (named in its image lock), else none",
        NO_REGISTRY,
    )
    build: str = _setting(
        _choice("auto", "always", "never"),
        "auto: pull the plan's published image where it is not here, else compile; always: compile, never "
        "pull; never: pull or stop, never compile",
        "auto",
    )
    image_lock: Path | None = _optional(
        _as_path, "the lock of published image digests (default: the one in the package)"
    )
    trust_tag: bool = _setting(
        _as_bool,
        "pull a published image by its tag where the lock holds no digest for it, or holds another (a tag "
        "pushed again), and say so each time; without it only an image a release of ours published, by "
        "the digest in its lock, is pulled",
        False,
    )
    project: str = _setting(
        _as_project, "compose project of the server (several servers run side by side by name)", "step-flash"
    )
    platform: str | None = _optional(
        _choice("linux/amd64", "linux/arm64"), "image platform, overriding the target's"
    )
    ctx_size: int | None = _optional(_as_int, "context size, overriding the profile's")
    speculative: Speculative | None = _optional(
        parse_speculative,
        "speculative decoding, overriding the profile's: off, mtp (the model's MTP heads), mtp:N (N draft "
        "tokens), or an n-gram type (ngram-mod, ngram-simple, ...; no extra weights)",
    )
    reasoning: str | None = _optional(
        parse_level,
        "the reasoning level of every request: low, medium or high (the chat template's reasoning_effort; a "
        "request's own reasoning_effort or chat_template_kwargs overrides it); default: the template's own",
    )
    draft_model: Path | None = _optional(
        _as_path, "the MTP sidecar GGUF (mtp-*.gguf) for a model whose file lacks its heads"
    )
    mmproj: str | None = _optional(
        _as_mmproj,
        "the vision projector GGUF (mmproj-*.gguf) that lets the model read images, or none (text only); "
        "default: the mmproj*.gguf beside the model file, if there is one",
    )
    rpc: tuple[Endpoint, ...] = _setting(
        parse_workers,
        "RPC workers the server spreads the model over: ADDRESS:PORT[,ADDRESS:PORT...] ('orchestrator worker "
        "up' on each)",
        (),
    )
    threads: int | None = _optional(_as_int, "CPU threads for llama.cpp, overriding the profile's")
    n_predict: int | None = _optional(
        _as_int,
        "the most tokens the server generates for a request that sets no max_tokens (llama-server's "
        "--n-predict), overriding the target's; 0: no cap",
    )
    native: bool = _setting(_as_bool, "build and run on the host instead of in a container", False)
    memory_limit: str | None = _optional(
        _as_memory,
        "a cap on the server container's memory, swap included (compose mem_limit), e.g. 100g; the kernel "
        "ends the server past it, and status says so",
    )
    cuda_architectures: str | None = _optional(
        _as_cuda_architectures,
        "the CUDA architectures to compile for, replacing the target's 121a-real (the DGX Spark's GB10); "
        "e.g. '121a-real;90-real' to run the image on an H100/H200 too",
    )
    gpu: str = _setting(
        _as_gpu,
        "which of the target's GPUs llama.cpp may use: all, or their indices such as 0 or 0,1 "
        "(CUDA_VISIBLE_DEVICES / GGML_VK_VISIBLE_DEVICES)",
        "all",
    )
    gpu_passthrough: bool = _setting(
        _as_bool,
        "hand the server's container the target's GPU (/dev/dri, or the NVIDIA reservation); false only for "
        "tests on a machine without that GPU",
        True,
    )
    wait_timeout: int = _setting(_as_int, "seconds to wait for the server to become healthy", 900)
    idle: int | None = _optional(
        parse_duration,
        "give the model's memory back after this long without a request (llama-server's sleep; the next "
        "request loads it again): a duration such as 30m, or off; default: the target's",
    )
    ui: str = _setting(
        _as_ui,
        "llama-server's web page: auto (the one built into the image, if any), off, or a folder of a built "
        "web UI to serve instead (mounted read-only; for air-gapped sites)",
        "auto",
    )
    build_cache: str | None = _optional(
        _as_str,
        "BuildKit layer cache shared between builds (cache-from, and cache-to with mode=max), "
        "e.g. type=gha,scope=NAME or type=registry,ref=REGISTRY/cache",
    )

    def origin(self, name: str) -> str:
        return self.origins[name]

    def with_value(self, name: str, value: object, origin: str) -> Settings:
        """These settings with one value replaced, parsed as any source's, saying where it came from."""
        parsed: Any = SPECS[name].parse(value)  # of the field's type: _setting ties parser and field
        return replace(self, **{name: parsed}, origins={**self.origins, name: origin})

    def rows(self) -> list[tuple[str, str, str]]:
        """Each setting's name, value as shown and origin, in the order they are declared."""
        return [(name, _shown(getattr(self, name)), self.origins[name]) for name in NAMES]


SPECS: Mapping[str, Spec] = MappingProxyType(
    {f.name: f.metadata["spec"] for f in fields(Settings) if "spec" in f.metadata}
)
NAMES = tuple(SPECS)


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Layer:
    origin: str
    values: Mapping[str, object]


def default_layer(data_dir: Path) -> Layer:
    """Every setting's default; data_dir is this machine's, and models_dir follows it (merge_layers)."""
    defaults = {name: spec.default for name, spec in SPECS.items() if not spec.per_machine}
    return Layer("default", {**defaults, "data_dir": data_dir})


def unknown_key_message(key: str, origin: str) -> str:
    close = difflib.get_close_matches(key, NAMES)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(NAMES)}"
    return f"unknown setting {key!r} in {origin}; {hint}"


def merge_layers(layers: Sequence[Layer]) -> Settings:
    """Later layers win. Values are parsed and checked here, so every source gets the same rules. The
    one way Settings are made: files, the environment and flags (app.config) all come through here."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        for key, raw in layer.values.items():
            if key not in SPECS:
                raise ConfigError(unknown_key_message(key, layer.origin))
            if raw is None:
                if layer.origin == "default":
                    values[key], origins[key] = None, layer.origin
                continue
            try:
                values[key] = SPECS[key].parse(raw)
            except ValueError as exc:
                raise ConfigError(f"bad value {raw!r} for {key} in {layer.origin}: {exc}") from None
            origins[key] = layer.origin
    if "models_dir" not in values:
        values["models_dir"], origins["models_dir"] = (
            values["data_dir"] / "models",
            "default (data_dir/models)",
        )
    return Settings(origins=origins, **values)


def check_settings(settings: Settings, *, key_to_come: bool = False) -> None:
    """What no plan can be made of: exposure without a key (unless the command is about to make one),
    never compiling with nowhere to pull from."""
    if not key_to_come:
        check_exposure(settings)
    if settings.build == "never" and settings.registry == "none" and not settings.native:
        raise UsageError("--no-build needs a registry to pull the image from, and registry is none: set one")


def check_exposure(settings: Settings) -> None:
    """A server reachable from other machines must demand a key, over TLS unless told otherwise."""
    problem = exposure_problem(
        settings.host, settings.tls, bool(settings.api_key_file), settings.allow_plain_http
    )
    if problem:
        raise UsageError(problem)
