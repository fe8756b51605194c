"""The compose document `up` writes for the server's service: the container spec plus what only a
long-running service has (port, restart policy, health check, rotated logs, the API key as a secret)."""

from __future__ import annotations

from collections.abc import Mapping
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
    CONTAINER_PORT,
    INFINIBAND,
    MODEL_IDENTITY_LABEL,
    SERVICE,
)
from orchestrator.core.plan.server import Address, argv_address, publish_address
from orchestrator.core.settings import Settings


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
            "test": ["CMD", "curl", "-fsS", f"http://{publish_address(health_host)}:{health_port}/health"],
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
        service["ports"] = [f"{publish_address(settings['host'])}:{settings['port']}:{CONTAINER_PORT}"]
    service |= service_devices(container, infiniband=bool(workers) and bool(facts.infiniband_nodes))
    if settings["memory_limit"]:
        service["mem_limit"] = service["memswap_limit"] = settings["memory_limit"]
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


def served_at(document: Mapping[str, Any]) -> Address | None:
    """Where the server of a compose document answers on the host: its published port, or (on the
    host's network, with RPC workers) the address llama-server binds itself; None when it says neither."""
    service = document.get("services", {}).get(SERVICE, {})
    ports = service.get("ports") or []
    if ports:
        # HOST:PORT:CONTAINER_PORT, an IPv6 HOST in brackets.
        host, port, _inside = str(ports[0]).rsplit(":", 2)
        return Address(host.strip("[]"), int(port))
    return argv_address([str(arg) for arg in service.get("command") or []])
