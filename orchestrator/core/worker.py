"""An RPC worker's plan, pure: llama.cpp's rpc-server from the very image the head of the same target runs
(same tag: same build, same RPC protocol), as a compose service with the target's devices and memory
environment, a cache volume for the tensors it has been sent, a restart policy and a health check.

The service uses the host's network: rpc-server then binds the one address it was given (never every
address, not even inside a container), and RDMA (RoCE over ConnectX) reaches the host's devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.plan import Plan
from orchestrator.core.plan.compose import service_devices, service_lockdown
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import CONTAINER_CACHE_DIR, TARGET_LABEL
from orchestrator.core.rpc import WARNING, Endpoint
from orchestrator.errors import UsageError

WORKER_SERVICE = "rpc-server"
# What build-llama.sh installs, whichever name the source's CMake target has (see SHIPPED_TOOLS).
WORKER_BINARY = "rpc-server"
CACHE_VOLUME = "rpc-cache"


@dataclass(frozen=True)
class WorkerPlace:
    """Where this machine's worker runs: its compose project and file (what down, status and logs need)."""

    project: str
    compose_file: Path


@dataclass(frozen=True)
class WorkerPlan:
    target: str
    listen: Endpoint
    image: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    place: WorkerPlace
    compose: Mapping[str, Any]
    warning: str
    build: ImageBuild = field(repr=False)

    @property
    def project(self) -> str:
        return self.place.project

    @property
    def compose_file(self) -> Path:
        return self.place.compose_file


def worker_place(plan: Plan) -> WorkerPlace:
    project = f"{plan.project}-worker"
    return WorkerPlace(project, plan.data_dir / "compose" / f"{project}.yaml")


def worker_plan(plan: Plan, listen: Endpoint) -> WorkerPlan:
    """The worker for this (head-style) plan's target and image, listening on one address."""
    if not isinstance(plan.build, ImageBuild) or plan.container is None:
        raise UsageError(
            f"a worker runs in a container; {plan.target} is built on the host: run its rpc-server from "
            f"the native prefix ({plan.build.prefix}/bin/rpc-server -H ADDRESS -p PORT -c)"  # type: ignore[union-attr]
        )
    container = plan.container
    threads = plan.inputs.settings.threads
    # --threads on the worker: its CPU backend's threads (rpc-server -t), as on the head.
    argv = (
        WORKER_BINARY,
        "-H",
        listen.host,
        "-p",
        str(listen.port),
        "-c",
        *(("-t", str(threads)) if threads else ()),
    )
    env = {**plan.server.env, "LLAMA_CACHE": str(CONTAINER_CACHE_DIR)}
    infiniband = bool(plan.inputs.facts.infiniband_nodes)
    place = worker_place(plan)
    project = place.project
    service: dict[str, Any] = {
        "image": plan.build.tag,
        "command": list(argv),
        "environment": env,
        "network_mode": "host",
        "volumes": [{"type": "volume", "source": CACHE_VOLUME, "target": str(CONTAINER_CACHE_DIR)}],
        **service_lockdown(container),
        # rpc-server speaks no HTTP: healthy is its port accepting a connection.
        "healthcheck": {
            "test": ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/{listen.host}/{listen.port}"],
            # rpc-server logs each connection: not too often.
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "60s",
        },
        "labels": {
            TARGET_LABEL: plan.target,
            "io.step-flash.role": "rpc-worker",
            "io.step-flash.image": plan.build.tag,
            "io.step-flash.listen": str(listen),
        },
    }
    service |= service_devices(container, infiniband=infiniband)
    compose = {"name": project, "services": {WORKER_SERVICE: service}, "volumes": {CACHE_VOLUME: {}}}
    return WorkerPlan(
        target=plan.target,
        listen=listen,
        image=plan.build.tag,
        argv=argv,
        env=env,
        place=place,
        compose=compose,
        warning=WARNING.format(address=listen),
        build=plan.build,
    )
