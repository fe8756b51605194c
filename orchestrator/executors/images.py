"""Carrying out an ImageBuild: stage the build context, skip an identical image, build, report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.plan.image import ImageBuild, local_base_images
from orchestrator.core.plan.layout import CONTAINER_DRIVER_FILE
from orchestrator.errors import OrchestratorError
from orchestrator.executors.assets import asset
from orchestrator.executors.engine import BuildProgress, Engine
from orchestrator.executors.webui import stage_fallback_page

BUILD_SCRIPT = "images/common/build-llama.sh"
RECIPE_LABEL = "io.step-flash.recipe-digest"
# Which web page the image carries: "embedded" (llama-server's own), "fallback: WHAT" (a built page
# the proxy serves, orchestrator.core.webui) or "none", from what the build found.
WEBUI_LABEL = "io.step-flash.webui"
# Written by build-llama.sh into its install prefix, /opt/llama in both Dockerfiles.
WEBUI_FILE = "/opt/llama/webui.txt"
# The RPC protocol version the build speaks (build-llama.sh reads it from ggml-rpc.h): head and workers
# must agree, and a worker's HELLO says its own.
RPC_PROTOCOL_LABEL = "io.step-flash.rpc-protocol"
RPC_PROTOCOL_FILE = "/opt/llama/rpc-protocol.txt"
# The GPU driver package the image brings and its version ("mesa-vulkan-drivers 26.1.6-1~bpo13+1"): for
# the Ryzen target, the RADV that drives the GPU. Written by build-llama.sh's driver step.
DRIVER_LABEL = "io.step-flash.driver"
# Bumped when the steps around the image build change (2: the web-page label after the build). A change
# to build-llama.sh (the RPC protocol file, say) changes the recipe by itself.
# 3: built under a staged tag and given the plan's tag only whole, so an image an interrupted build left
# under it without those labels is made again.
# 4: the fallback web page staged into the context.
RECIPE_VERSION = "4"
_SKIP_IN_SOURCE = {".git", "node_modules", "__pycache__", ".cache"}


@dataclass(frozen=True)
class BuildOutcome:
    tag: str
    built: bool
    seconds: float
    log: Path | None
    # What the build said about llama-server's web page ("embedded", or "none: why"), when it said.
    webui: str | None = None
    # The published reference it was pulled from instead of built (with its digest).
    pulled: str | None = None


def recipe_digest(build: ImageBuild, base_ids: list[str]) -> str:
    """The plan's digest, the Dockerfile, the build script, the local bases' ids and the way this module
    makes images (RECIPE_VERSION): a change to any of them means a new image."""
    digest = hashlib.sha256(f"{RECIPE_VERSION}|{build.digest}".encode())
    for path in (asset(build.dockerfile), asset(BUILD_SCRIPT)):
        digest.update(path.read_bytes())
    for base_id in base_ids:
        digest.update(base_id.encode())
    return digest.hexdigest()[:16]


def ignore_build_outputs(directory: str, names: list[str]) -> set[str]:
    """For shutil.copytree: VCS data and build folders, never source files (cmake/build-info.cmake is one)."""
    return {
        n
        for n in names
        if n in _SKIP_IN_SOURCE or (n.startswith("build") and os.path.isdir(os.path.join(directory, n)))
    }


def _link_or_copy(src: str, dst: str) -> None:
    # Hard links make staging a 200 MB tree instant; a copy is the fallback across file systems.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def staged_context(build: ImageBuild, work_dir: Path) -> Iterator[Path]:
    """A build context holding the shared build script and, for a local source, the source tree, for
    as long as the build needs it; removed afterwards, however the build ends, a signal while the source
    is still being copied in included (the folder is made inside the block that removes it)."""
    # A folder of its own per build: two builds at once never share (or delete) each other's context.
    parent = work_dir / "contexts"
    parent.mkdir(parents=True, exist_ok=True)
    context = parent / f"{build.tag.replace(':', '_').replace('/', '_')}-{uuid.uuid4().hex[:8]}"
    try:
        context.mkdir()
        shutil.copy2(asset(BUILD_SCRIPT), context / "build-llama.sh")
        stage_fallback_page(context / "webui", work_dir / "cache" / "sources")
        staged = context / "staged"
        if build.source_dir:
            shutil.copytree(
                build.source_dir,
                staged,
                ignore=ignore_build_outputs,
                copy_function=_link_or_copy,
                symlinks=True,
            )
        else:
            staged.mkdir()
        yield context
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _recipe(engine: Engine, build: ImageBuild) -> str:
    base_ids = []
    local = local_base_images(build.family, build.platform, build.build_platform)
    for role in ("BUILD_BASE", "RUNTIME_BASE"):
        base = build.build_args[role]
        base_id = engine.image_id(base)
        if base in local and base_id is None:
            raise OrchestratorError(
                f"local base image {base} is missing; make it with 'orchestrator bases bootstrap --family {build.family} --platform {build.platform}'"
            )
        base_ids.append(base_id or base)
    return recipe_digest(build, base_ids)


def is_up_to_date(engine: Engine, build: ImageBuild) -> bool:
    existing = engine.image_labels(build.tag)
    return existing is not None and existing.get(RECIPE_LABEL) == _recipe(engine, build)


def build_image(
    engine: Engine,
    build: ImageBuild,
    *,
    work_dir: Path,
    rebuild: bool = False,
    on_progress: Callable[[BuildProgress], None] = lambda _: None,
) -> BuildOutcome:
    recipe = _recipe(engine, build)
    existing = engine.image_labels(build.tag)
    if existing is not None and existing.get(RECIPE_LABEL) == recipe and not rebuild:
        return BuildOutcome(build.tag, built=False, seconds=0.0, log=None)
    started = time.monotonic()
    # Built under a tag of its own and named build.tag only once whole (labels found after the build
    # included): a build stopped on the way leaves the last finished image under its tag.
    staged = f"{build.tag}-staged"
    log = work_dir / "logs" / f"build-{build.tag.replace(':', '_').replace('/', '_')}.log"
    with staged_context(build, work_dir) as context:
        engine.build(
            context=context,
            dockerfile=asset(build.dockerfile),
            stage=build.stage,
            tag=staged,
            build_args=build.build_args,
            labels={**build.labels, RECIPE_LABEL: recipe},
            platform=build.platform,
            log_path=log,
            on_progress=on_progress,
            cache=build.cache,
        )
    # Known only once the build ran, so recorded in a config-only step after it.
    paths = (WEBUI_FILE, RPC_PROTOCOL_FILE, str(CONTAINER_DRIVER_FILE))
    found_files = engine.read_files(staged, paths, build.platform)
    webui, protocol, driver = ((found_files.get(path) or "").strip() or None for path in paths)
    found = (
        ({WEBUI_LABEL: webui if webui.startswith(("embedded", "fallback")) else "none"} if webui else {})
        | ({RPC_PROTOCOL_LABEL: protocol} if protocol else {})
        | ({DRIVER_LABEL: driver} if driver else {})
    )
    engine.promote(staged, build.tag, found, build.platform)
    outcome = BuildOutcome(build.tag, built=True, seconds=time.monotonic() - started, log=log, webui=webui)
    _record(work_dir, outcome)
    return outcome


def _record(work_dir: Path, outcome: BuildOutcome) -> None:
    """Build history (logs/builds.jsonl): when each image was built and how long it took."""
    entry = {
        "tag": outcome.tag,
        "seconds": round(outcome.seconds, 1),
        "finished": time.time(),
        "log": str(outcome.log),
    }
    history_file = work_dir / "logs" / "builds.jsonl"
    history_file.parent.mkdir(parents=True, exist_ok=True)
    with history_file.open("a") as history:
        history.write(json.dumps(entry) + "\n")
