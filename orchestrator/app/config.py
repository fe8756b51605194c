"""Where settings come from: defaults < orchestrator.yaml (XDG config, then current directory) <
ORCHESTRATOR_* < flags. This reads the files and the environment; orchestrator.core.settings merges them."""

from __future__ import annotations

import functools
import os
import secrets
import socket
import stat
from collections.abc import Mapping
from pathlib import Path

import yaml

from orchestrator.core.exposure import is_address, is_loopback, made_key_path
from orchestrator.core.settings import (
    APP_NAME,
    SPECS,
    Layer,
    Settings,
    default_layer,
    merge_layers,
    unknown_key_message,
)
from orchestrator.errors import ConfigError, UsageError
from orchestrator.executors.published import read_lock
from orchestrator.files import write_private

CONFIG_FILENAME = "orchestrator.yaml"
ENV_PREFIX = "ORCHESTRATOR_"


def env_layers(environ: Mapping[str, str]) -> list[Layer]:
    layers = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in SPECS:
            raise ConfigError(unknown_key_message(key, f"environment variable {name}"))
        layers.append(Layer(f"env {name}", {key: raw}))
    return layers


def file_layer(path: Path) -> Layer:
    origin = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{origin} is not valid YAML{where}; fix it or move it away") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {origin}: {exc.strerror}") from None
    if data is None:
        return Layer(origin, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a mapping of settings (key: value), not a {type(data).__name__}")
    return Layer(origin, {str(k).replace("-", "_"): v for k, v in data.items()})


# What a folder's orchestrator.yaml (a cloned repository could carry one) may set: what shapes a run.
# What decides what runs (the source, the images, the page served on the server's own origin) or who
# reaches it (the address, origins, TLS, the key, RPC workers) comes only from the user's own file, the
# environment or a flag.
FOLDER_SETTINGS = frozenset(
    {
        "target", "profile", "port", "ctx_size", "threads", "n_predict", "speculative", "idle",
        "wait_timeout", "memory_limit", "gpu", "platform", "bases", "build", "image_repo", "native",
        "reasoning",
    }
)  # fmt: skip


def _folder_layer(layer: Layer, own: Path) -> Layer:
    said = sorted(k for k in layer.values if k not in FOLDER_SETTINGS and k in SPECS)
    if said:
        raise ConfigError(
            f"{layer.origin} sets {', '.join(said)}: a folder's orchestrator.yaml may not decide what runs "
            f"or who reaches it; move that to your own {own}, ORCHESTRATOR_* or a flag"
        )
    return layer


def config_files(cwd: Path, config_home: Path) -> list[Path]:
    """Files that exist, lowest precedence first: the user's XDG file, then the project's in cwd."""
    candidates = [config_home / APP_NAME / CONFIG_FILENAME, cwd / CONFIG_FILENAME]
    seen: list[Path] = []
    for path in candidates:
        if path.is_file() and path.resolve() not in [p.resolve() for p in seen]:
            seen.append(path)
    return seen


def load_settings(
    flags: Mapping[str, object], *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Settings:
    from platformdirs import user_config_path, user_data_path

    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    config_home = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else user_config_path()
    data_home = (
        Path(environ["XDG_DATA_HOME"]) / APP_NAME
        if environ.get("XDG_DATA_HOME")
        else user_data_path(APP_NAME)
    )
    layers = [default_layer(data_home)]
    own = config_home / APP_NAME / CONFIG_FILENAME
    files = [
        file_layer(p) if p == own else _folder_layer(file_layer(p), own)
        for p in config_files(cwd, config_home)
    ]
    environment = env_layers(environ)
    layers += [released_layer([*files, *environment], flags), *files, *environment]
    layers += [Layer("flag --" + k.replace("_", "-"), {k: v}) for k, v in flags.items() if v is not None]
    return with_made_key(_resolved(merge_layers(layers)))


def released_layer(above: list[Layer], flags: Mapping[str, object]) -> Layer:
    """The namespace the release that made this package pushed its images to, from the image lock it
    ships (or the one the settings name): the registry's default. Empty when the lock names none."""
    lock_path = flags.get("image_lock") or next(
        (layer.values["image_lock"] for layer in reversed(above) if "image_lock" in layer.values), None
    )
    lock = read_lock(Path(str(lock_path)).expanduser() if lock_path else None)
    origin = f"the image lock {lock_path or 'in the package'}"
    return Layer(origin, {"registry": lock.registry} if lock.registry else {})


def _resolved(settings: Settings) -> Settings:
    """Settings as the rest of the tool reads them: the folders absolute (compose resolves a relative bind
    path elsewhere), and the host an address (loopback is decided by the address, never by a name; the
    name given stays one the server answers to)."""
    for name, folder in (("data_dir", settings.data_dir), ("models_dir", settings.models_dir)):
        if not folder.is_absolute():
            settings = settings.with_value(name, folder.absolute(), settings.origin(name))
    host = settings.host
    if not is_address(host):
        address = resolve_host(host)
        origin = f"{settings.origin('host')} ({host}, resolved)"
        settings = settings.with_value("host", address, origin)
        if not is_loopback(address) and host not in settings.host_names:
            settings = settings.with_value("host_names", (*settings.host_names, host), origin)
    return settings


@functools.cache
def resolve_host(name: str) -> str:
    """The address a host name stands for on this machine (localhost: 127.0.0.1), or one line. Asked once
    per command: its settings are read more than once."""
    if name == "localhost":
        return "127.0.0.1"
    try:
        found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        found = []
    if not found:
        raise ConfigError(
            f"host {name!r} is not an IP address and does not resolve here; give an address such as "
            "127.0.0.1, 0.0.0.0 or this machine's LAN address"
        )
    return str(found[0][4][0])


def check_ui(settings: Settings) -> None:
    """A page folder to serve: one that holds index.html, and none of the folders whose files must never
    be served (the filesystem's root, the home folder, the data and models directories)."""
    ui = settings.ui
    if ui in ("auto", "off"):
        return
    folder = Path(ui)
    if not folder.is_dir():
        raise UsageError(
            f"--ui {folder} is not a folder; give the folder of a built web page (with index.html)"
        )
    real = folder.resolve()
    data, models = settings.data_dir.resolve(), settings.models_dir.resolve()
    holds = {Path("/"): "the filesystem's root", Path.home().resolve(): "your home folder"}
    holds |= {data: "the data directory (keys, certificates)", models: "the models directory"}
    what = next((w for path, w in holds.items() if path.is_relative_to(real)), None)
    if what is None and (real.is_relative_to(data) or real.is_relative_to(models)):
        what = "a folder of the data or models directory"
    if what is not None:
        raise UsageError(
            f"--ui {folder} would serve {what} to anyone who can reach the server; give a folder that "
            "holds only the web page"
        )
    if not (real / "index.html").is_file():
        raise UsageError(f"--ui {folder} holds no index.html; give the folder of a built web page")


def check_key_file(path: Path | None) -> None:
    """The API key file, when one is set, holds a key and only its owner can read it."""
    if path is None:
        return
    path = Path(path).absolute()
    try:
        key = path.read_text().strip() if path.is_file() else ""
    except OSError:
        key = ""
    if not key:
        raise UsageError(f"API key file {path} is missing or empty; write the key into it")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"API key file {path} can be read by other users; chmod 600 {path}")


def with_made_key(settings: Settings) -> Settings:
    """Beyond loopback with no key file: the key `up` made before, when there is one."""
    made = made_key_path(settings.data_dir)
    if settings.api_key_file or is_loopback(settings.host) or not made.is_file():
        return settings
    return settings.with_value("api_key_file", made, "default: the key up made")


def make_api_key(settings: Settings) -> Path:
    """A new random key, in a file only its owner can read."""
    path = made_key_path(settings.data_dir)
    write_private(path, (secrets.token_urlsafe(32) + "\n").encode())
    return path


def needs_key(settings: Settings) -> bool:
    return not is_loopback(settings.host) and not settings.api_key_file
