"""How the target's containers run: the image, the read-only mounts (model, web UI, MTP sidecar, vision
projector), the GPU devices and groups, the unprivileged user and the lock-down, the same for the server
and one-off runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

from orchestrator.core.catalogue import Target
from orchestrator.core.facts import HostFacts
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.layout import (
    CONTAINER_DRAFT_DIR,
    CONTAINER_MMPROJ_DIR,
    CONTAINER_MODELS_DIR,
    CONTAINER_UI_DIR,
    CONTAINER_UID,
)
from orchestrator.core.settings import Settings
from orchestrator.core.speculation import Speculation


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


def container_spec(
    target: Target,
    model: ModelSpec,
    facts: HostFacts,
    build: ImageBuild,
    settings: Settings,
    speculation: Speculation,
) -> ContainerSpec:
    ui = settings.ui
    ui_mount = () if ui in ("auto", "off") else ((ui, str(CONTAINER_UI_DIR), "ro"),)
    # A file from outside the model's folder is mounted alone, not its folder: that could be the
    # owner's home or the data directory, with keys in it.
    sidecar = speculation.sidecar
    draft_mount = (
        ((str(sidecar), str(CONTAINER_DRAFT_DIR / sidecar.name), "ro"),)
        if sidecar is not None and sidecar_dir(sidecar, model) == CONTAINER_DRAFT_DIR
        else ()
    )
    projector = model.projector
    mmproj_mount = (
        ((str(projector.path), str(CONTAINER_MMPROJ_DIR / projector.path.name), "ro"),)
        if projector is not None and projector.path.parent != model.directory
        else ()
    )
    gpu = target.devices if settings.gpu_passthrough else "none"
    return ContainerSpec(
        image=build.tag,
        volumes=(
            (str(model.directory), str(CONTAINER_MODELS_DIR), "ro"),
            *ui_mount,
            *draft_mount,
            *mmproj_mount,
        ),
        devices=("/dev/dri:/dev/dri",) if gpu == "dri" else (),
        gpus="all" if gpu == "nvidia" else None,
        group_add=tuple(g for g in (facts.render_gid, facts.video_gid) if g is not None)
        if gpu == "dri"
        else (),
        memlock_unlimited=gpu == "nvidia",
        network="host" if settings.rpc else None,
    )


def projector_arg(model: ModelSpec, runtime: str) -> list[str]:
    """llama-server's --mmproj: the projector beside the model (in the model's mount), in its own
    read-only mount, or on the host for a native server; nothing when the model has none."""
    projector = model.projector
    if projector is None:
        return []
    if runtime != "container":
        return ["--mmproj", str(projector.path)]
    folder = CONTAINER_MODELS_DIR if projector.path.parent == model.directory else CONTAINER_MMPROJ_DIR
    return ["--mmproj", str(folder / projector.path.name)]


def sidecar_dir(sidecar: Path, model: ModelSpec) -> PurePosixPath:
    """Where a sidecar is inside the container: beside the model, or in its own read-only mount."""
    return CONTAINER_MODELS_DIR if sidecar.parent == model.directory else CONTAINER_DRAFT_DIR
