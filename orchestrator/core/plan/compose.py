"""The compose document `up` writes: the server's service (the container spec plus what only a
long-running service has: restart policy, health check, rotated logs, the API key as a secret) and the
proxy in front of it, which alone is published (see core.plan.proxy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.core.catalogue import Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.argv import Command
from orchestrator.core.plan.container import ContainerSpec
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import (
    CONTAINER_API_KEY,
    CONTAINER_SOCKET,
    CONTAINER_SOCKET_DIR,
    INFINIBAND,
    MODEL_IDENTITY_LABEL,
    SERVICE,
    TARGET_LABEL,
)
from orchestrator.core.plan.proxy import (
    CONTAINER_PROXY_CONFIG,
    CONTAINER_TLS_CERT,
    CONTAINER_TLS_KEY,
    PROXY_PORT,
    PROXY_SERVICE,
    SCHEME_LABEL,
    proxy_config_path,
    secrets_dir,
    tls_files,
)
from orchestrator.core.plan.server import Address, argv_address, publish_address
from orchestrator.core.settings import Settings

# On the proxy's service: the address it publishes, as the plan's Address says it.
ADDRESS_LABEL = "io.step-flash.address"


def compose_document(
    target: Target,
    settings: Settings,
    build: ImageBuild,
    server: Command,
    container: ContainerSpec,
    model: ModelSpec,
    facts: HostFacts,
    scheme: str,
) -> tuple[dict[str, Any], list[str]]:
    """The server's service: the container spec's image, mounts, user, devices and lock-down, plus
    what only a long-running service has (restart, health check, logs, secret); and the proxy in front
    of it, published on the plan's address."""
    warnings: list[str] = []
    workers = settings.rpc
    data_dir = settings.data_dir
    service: dict[str, Any] = {
        "image": container.image,
        "command": _socket_freed(server.argv),
        "environment": dict(server.env),
        "volumes": [
            {"type": "bind", "source": source, "target": target_dir, "read_only": mode == "ro"}
            for source, target_dir, mode in container.volumes
        ]
        + [_SOCKET_MOUNT],
        **service_lockdown(container),
        # No network of its own: the proxy reaches it through the socket. With RPC workers it is on the
        # host's network (their addresses are the host's, RDMA needs its devices) and only dials out.
        "network_mode": "host" if workers else "none",
        "healthcheck": {
            "test": [
                "CMD",
                "curl",
                "-fsS",
                "--unix-socket",
                str(CONTAINER_SOCKET),
                "http://localhost/health",
            ],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{settings.wait_timeout}s",
        },
        "labels": {TARGET_LABEL: target.name, "io.step-flash.plan-digest": build.digest}
        | ({MODEL_IDENTITY_LABEL: model.identity} if model.identity else {}),
    }
    published = publish_address(settings.host)
    proxy: dict[str, Any] = {
        "image": container.image,
        "command": ["caddy", "run", "--config", str(CONTAINER_PROXY_CONFIG)],
        # Caddy looks for a home for its state: the container's own /tmp (the root is read-only).
        "environment": {"XDG_CONFIG_HOME": "/tmp", "XDG_DATA_HOME": "/tmp"},
        "volumes": [
            {
                "type": "bind",
                "source": str(proxy_config_path(data_dir, settings.project)),
                "target": str(CONTAINER_PROXY_CONFIG),
                "read_only": True,
            },
            _SOCKET_MOUNT,
        ],
        **service_lockdown(container),
        # The image's own health check asks llama-server, which is not in this container; up asks
        # through the proxy, and Docker's restart policy keeps it running.
        "healthcheck": {"disable": True},
        "depends_on": [SERVICE],
        "labels": {
            SCHEME_LABEL: scheme,
            ADDRESS_LABEL: f"{published}:{settings.port}",
        },
    }
    proxy["ports"] = [f"{published}:{settings.port}:{PROXY_PORT}"]
    service |= service_devices(container, infiniband=bool(workers) and bool(facts.infiniband_nodes))
    if settings.memory_limit:
        service["mem_limit"] = service["memswap_limit"] = settings.memory_limit
    if container.devices and not container.group_add:
        warnings.append("no render/video group on this host: the container may not open /dev/dri")
    document: dict[str, Any] = {
        "name": settings.project,
        "services": {SERVICE: service, PROXY_SERVICE: proxy},
        "volumes": {SOCKET_VOLUME: _socket_volume(container.user)},
    }
    secrets: dict[str, Any] = {}
    if settings.api_key_file:
        service["secrets"] = [{"source": "api_key", "target": str(CONTAINER_API_KEY)}]
        secrets["api_key"] = {"file": str(secret_copy_path(data_dir, settings.project))}
    if scheme == "https":
        files = tls_files(data_dir, settings.project)
        proxy["secrets"] = [
            {"source": "tls_certificate", "target": str(CONTAINER_TLS_CERT)},
            {"source": "tls_key", "target": str(CONTAINER_TLS_KEY)},
        ]
        secrets["tls_certificate"] = {"file": str(files.proxy_cert)}
        secrets["tls_key"] = {"file": str(files.proxy_key)}
    if secrets:
        document["secrets"] = secrets
    return document, warnings


SOCKET_VOLUME = "socket"
_SOCKET_MOUNT = {"type": "volume", "source": SOCKET_VOLUME, "target": str(CONTAINER_SOCKET_DIR)}


def _socket_volume(user: str) -> dict[str, Any]:
    """The folder of llama-server's socket: in memory, shared by the server and its proxy alone, opened
    only by the containers' user."""
    uid, _, gid = user.partition(":")
    return {"driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": f"uid={uid},gid={gid or uid},mode=0700"}}


def _socket_freed(argv: Sequence[str]) -> list[str]:
    """llama-server's command, run after removing a socket file a previous run in this container left:
    the proxy keeps the folder mounted through a restart, and a socket file that is there refuses the bind."""
    return ["sh", "-c", 'rm -f "$0" && exec "$@"', str(CONTAINER_SOCKET), *argv]


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


def secret_copy_path(data_dir: Path, project: str) -> Path:
    """Where `up` copies the API key: readable by the container's user, inside a folder only we open."""
    return secrets_dir(data_dir, project) / "api_key"


def served_at(document: Mapping[str, Any]) -> Address | None:
    """Where the server of a compose document answers on the host: the address its proxy publishes, or
    (a document written before the proxy) its own published port or bound address; None when it says
    none."""
    services = document.get("services", {})
    labels = services.get(PROXY_SERVICE, {}).get("labels") or {}
    if ADDRESS_LABEL in labels:
        host, port = str(labels[ADDRESS_LABEL]).rsplit(":", 1)
        return Address(host.strip("[]"), int(port), str(labels.get(SCHEME_LABEL, "http")))
    service = services.get(SERVICE, {})
    ports = service.get("ports") or []
    if ports:
        # HOST:PORT:CONTAINER_PORT, an IPv6 HOST in brackets.
        host, port, _inside = str(ports[0]).rsplit(":", 2)
        return Address(host.strip("[]"), int(port))
    return argv_address([str(arg) for arg in service.get("command") or []])


def secret_files(document: Mapping[str, Any]) -> list[Path]:
    """The files a compose document hands its services as secrets (our copies of the key, the TLS files)."""
    return [Path(str(s["file"])) for s in (document.get("secrets") or {}).values() if "file" in s]


def proxy_config_source(document: Mapping[str, Any]) -> Path | None:
    """The file a compose document mounts as its proxy's configuration (None: it has no proxy)."""
    proxy = document.get("services", {}).get(PROXY_SERVICE, {})
    for volume in proxy.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("target") == str(CONTAINER_PROXY_CONFIG):
            return Path(str(volume["source"]))
    return None


def mounted_files(document: Mapping[str, Any]) -> list[Path]:
    """Its secrets' files and the proxy's configuration: what a server started again from this
    document needs back as it was."""
    config = proxy_config_source(document)
    return secret_files(document) + ([config] if config else [])
