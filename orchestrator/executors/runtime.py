"""Where a plan's programs run: in containers (`ContainerRuntime` here: images, a compose service, one-off
containers) or on the host (executors.native_runtime). Both behind one interface (executors.server_state's
Runtime), chosen once from the plan by `runtime_for`, so no command below the CLI asks which it is."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core.plan import Plan
from orchestrator.core.plan.argv import Command
from orchestrator.core.plan.compose import mounted_files, secret_copy_path, secret_files, served_at
from orchestrator.core.plan.container import ContainerSpec
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.jobs import ToolJob
from orchestrator.core.plan.layout import MODEL_IDENTITY_LABEL, SERVICE
from orchestrator.core.plan.programs import BenchPlan
from orchestrator.core.plan.proxy import CONTAINER_PROXY_CONFIG, PROXY_SERVICE, all_secrets_dir, tls_files
from orchestrator.core.plan.server import Address
from orchestrator.executors import certificates
from orchestrator.executors.container_user import readable_in_container, writer_of
from orchestrator.executors.engine import BuildProgress, Engine
from orchestrator.executors.health import Probe
from orchestrator.executors.host import Host
from orchestrator.executors.images import BuildOutcome, build_image, is_up_to_date
from orchestrator.executors.native_runtime import NativeRuntime
from orchestrator.executors.published import was_pulled
from orchestrator.executors.server_state import Deployed, Runtime, ServerState, require_free
from orchestrator.files import content_digest, digest_key, write_atomic, write_for_container


@dataclass(frozen=True)
class ContainerParts:
    image: ImageBuild
    container: ContainerSpec
    compose: Mapping[str, Any]
    compose_file: Path


def container_parts(plan: Plan) -> ContainerParts:
    """What a plan that runs in a container has and a native one has not (make_plan sets all four or
    none); runtime_for hands the container runtime only such plans, so a plan without them is a bug."""
    if (
        not isinstance(plan.build, ImageBuild)
        or plan.container is None
        or plan.compose is None
        or plan.compose_file is None
    ):
        raise TypeError(f"the container runtime was handed a native plan (target {plan.target})")
    return ContainerParts(plan.build, plan.container, plan.compose, plan.compose_file)


def runtime_for(plan: Plan, engine: Engine, host: Host) -> Runtime:
    if isinstance(plan.build, ImageBuild):
        return ContainerRuntime(engine, host)
    return NativeRuntime(host, launchd=plan.launch_agent is not None)


def _model_changed(plan: Plan, started_from: str | None) -> bool | None:
    if started_from is None or plan.model.identity is None:
        return None
    return started_from != plan.model.identity


def _uptime(started_at: str | None) -> float | None:
    if not started_at:
        return None
    return round((datetime.now(UTC) - datetime.fromisoformat(started_at)).total_seconds(), 1)


class ContainerRuntime:
    kind = "container"

    def __init__(self, engine: Engine, host: Host) -> None:
        self.engine = engine
        self.host = host
        self._restarts_at_start = 0

    def require(self, *, serving: bool) -> None:
        self.engine.require(buildx=True, compose=serving)

    def is_built(self, plan: Plan) -> bool:
        image = container_parts(plan).image
        self.engine.require_platform(image.platform)
        return is_up_to_date(self.engine, image) or was_pulled(
            plan.data_dir, image.tag, self.engine.image_id(image.tag)
        )

    def build(
        self, plan: Plan, *, rebuild: bool, on_progress: Callable[[BuildProgress], None]
    ) -> BuildOutcome:
        return build_image(
            self.engine,
            container_parts(plan).image,
            work_dir=plan.data_dir,
            rebuild=rebuild,
            on_progress=on_progress,
        )

    def _served_at(self, plan: Plan) -> Address | None:
        """Where the server this project's compose file describes answers (None: no file, or neither of its
        services is there: its proxy alone still holds the port)."""
        file = container_parts(plan).compose_file
        if not file.is_file() or all(
            self.engine.service(plan.project, name) is None for name in (SERVICE, PROXY_SERVICE)
        ):
            return None
        return served_at(yaml.safe_load(file.read_text()) or {})

    def check_port(self, plan: Plan) -> None:
        # This project's own server holds its ports until it is replaced: they are free for the plan.
        served = self._served_at(plan)
        if served is not None and served.port == plan.publish.port:
            return
        require_free(self.host, plan.publish)

    def start(self, plan: Plan) -> bool:
        readable_in_container(plan)
        self._mark_restarts(plan)
        install_api_key(plan)
        certificates.prepare(plan.exposure, tls_files(plan.data_dir, plan.project))
        write_atomic(plan.proxy_file, json.dumps(plan.proxy, indent=2) + "\n")
        write_compose(plan)
        self.engine.compose_up(container_parts(plan).compose_file, plan.project)
        return True

    def _mark_restarts(self, plan: Plan) -> None:
        running = self.engine.service(plan.project, SERVICE)
        self._restarts_at_start = running.restarts if running else 0

    def deployed(self, plan: Plan) -> Deployed | None:
        file = container_parts(plan).compose_file
        service = self.engine.service(plan.project, SERVICE)
        if service is None or service.state != "running" or not file.is_file():
            return None
        text = file.read_text()
        document = yaml.safe_load(text) or {}
        served = served_at(document)
        if served is None:
            return None
        files = {path: path.read_bytes() for path in mounted_files(document) if path.is_file()}
        return Deployed(served, compose=text, files=files)

    def restore(self, plan: Plan, deployed: Deployed) -> None:
        if deployed.compose is None:
            raise TypeError("the container runtime was handed a native server's deployment to restore")
        self._mark_restarts(plan)
        secrets = set(secret_files(yaml.safe_load(deployed.compose) or {}))
        key = digest_key(all_secrets_dir(plan.data_dir))
        for path, data in deployed.files.items():
            if not _restorable(path, data, key):
                continue
            if path in secrets:
                write_for_container(path, data)
            else:
                write_atomic(path, data.decode())
        write_atomic(container_parts(plan).compose_file, deployed.compose)
        self.engine.compose_up(container_parts(plan).compose_file, plan.project)

    def stop(self, plan: Plan) -> bool:
        if not container_parts(plan).compose_file.exists():
            return False
        self.engine.compose_down(container_parts(plan).compose_file, plan.project)
        return True

    def state(self, plan: Plan) -> ServerState:
        service = self.engine.service(plan.project, SERVICE)
        if service is None:
            return ServerState(state="not created", running=False)
        running = service.state == "running"
        return ServerState(
            state=service.state,
            running=running,
            health=service.health,
            container=service.container,
            image=service.image,
            uptime_s=_uptime(service.started_at) if running else None,
            restarts=service.restarts,
            log=f"docker logs {service.container}",
            model_changed=_model_changed(plan, service.labels.get(MODEL_IDENTITY_LABEL)),
            oom_killed=service.oom_killed,
            memory_bytes=self.engine.service_memory(plan.project, SERVICE) if running else None,
        )

    def probe(self, plan: Plan, at: Address | None = None) -> Probe:
        service = self.engine.service(plan.project, SERVICE)
        if service is None:
            return Probe("failed", "the container is gone")
        if service.state in ("exited", "dead", "restarting") or service.restarts > self._restarts_at_start:
            return Probe(
                "failed",
                f"the container {service.state} (exit code {service.exit_code}, restarts {service.restarts})",
                out_of_memory=service.oom_killed,
            )
        proxy = self.engine.service(plan.project, PROXY_SERVICE)
        if proxy is not None and proxy.state in ("exited", "dead", "restarting"):
            last = [line for line in self.engine.service_logs(plan.project, PROXY_SERVICE, tail=3) if line]
            return Probe(
                "failed",
                f"the proxy in front of llama-server {proxy.state} ({last[-1] if last else 'no log'})",
            )
        return Probe(
            self.host.readiness((at or plan.publish).url + "/health", trust=plan.trust),
            service.health or service.state,
        )

    def logs(self, plan: Plan, *, tail: int | None, follow: bool = False) -> Iterable[str]:
        return self.engine.service_logs(plan.project, SERVICE, tail=None if follow else tail, follow=follow)

    def _one_off(self, plan: Plan, command: Command) -> Iterable[str]:
        container = container_parts(plan).container
        readable_in_container(plan)
        return self.engine.stream(container, command.argv, command.env)

    def run(self, plan: Plan) -> Iterable[str]:
        return self._one_off(plan, plan.run)

    def bench(self, plan: Plan, bench: BenchPlan) -> Iterable[str]:
        return self._one_off(plan, bench.command)

    def tool(self, plan: Plan, job: ToolJob) -> Iterable[str]:
        spec = replace(
            container_parts(plan).container, volumes=job.volumes(), network=None, user=writer_of(job.output)
        )
        return self.engine.stream(spec, job.container_argv(), job.env)

    def location(self, plan: Plan) -> str:
        return str(container_parts(plan).compose_file)


def write_compose(plan: Plan) -> Path:
    """Write the plan's compose document where users can read and run it; replaced whole, never half-written.
    The files its services read at start (the key and TLS copies, the proxy's configuration) are named by
    their content (see pinned_inputs), so a changed key, certificate or proxy rule changes the document
    and compose replaces the services that read it."""
    parts = container_parts(plan)
    document = pinned_inputs(parts.compose, digest_key(all_secrets_dir(plan.data_dir)))
    write_atomic(
        parts.compose_file,
        compose_document_text(parts.compose_file, document, f"target {plan.target}, profile {plan.profile}"),
    )
    return parts.compose_file


# On each service of a written compose file: which files (by content) it read at start.
INPUTS_LABEL = "io.step-flash.inputs"


def pinned_inputs(document: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The document with each file of ours that it mounts (written by now) replaced by a copy named by its
    content (keyed: files.content_digest), beside it. A server reads these once, at start: a new name is
    what makes compose start it again, and an old deployment's document still names what it ran with
    (rollback's copies)."""
    pinned: dict[str, Any] = copy.deepcopy(dict(document))
    secrets = pinned.get("secrets") or {}
    for secret in secrets.values():
        if "file" in secret:
            secret["file"] = str(_content_named(Path(secret["file"]), write_for_container, key))
    for service in pinned.get("services", {}).values():
        read: list[str] = []
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and volume.get("target") == str(CONTAINER_PROXY_CONFIG):
                volume["source"] = str(
                    _content_named(Path(volume["source"]), lambda p, d: write_atomic(p, d.decode()), key)
                )
                read.append(volume["source"])
        read += [
            str(secrets[s["source"]]["file"]) for s in service.get("secrets") or [] if s["source"] in secrets
        ]
        if read:
            # Compose compares a service's own definition, not the files its secrets name: the names of
            # what it reads, on the service itself, are what make a new key replace the container.
            service.setdefault("labels", {})[INPUTS_LABEL] = content_digest("\n".join(read).encode(), key)
    return pinned


def _restorable(path: Path, data: bytes, key: bytes) -> bool:
    """Whether data goes back to path: a file named by its content holds that content and nothing else
    (kept as it is when there, never overwritten with other bytes); any other file of ours is restored.
    A name made before names were keyed (a plain SHA-256) still counts as its content's."""
    stem, _, suffix = path.name.rpartition(".")
    if stem and len(suffix) == 16 and all(c in "0123456789abcdef" for c in suffix):
        return not path.is_file() and suffix in (content_digest(data, key), content_digest(data))
    return True


def _content_named(path: Path, write: Callable[[Path, bytes], None], key: bytes) -> Path:
    data = path.read_bytes()
    named = path.with_name(f"{path.name}.{content_digest(data, key)}")
    if not named.is_file() or named.read_bytes() != data:
        write(named, data)
    return named


def write_compose_document(path: Path, document: Mapping[str, Any], what: str) -> Path:
    write_atomic(path, compose_document_text(path, document, what))
    return path


def compose_document_text(path: Path, document: Mapping[str, Any], what: str) -> str:
    header = (
        f"# Generated by step-flash-orchestrator for {what}.\n"
        f"# Run it without the tool: docker compose -f {path} up -d\n"
    )
    return header + yaml.safe_dump(dict(document), sort_keys=False)


def install_api_key(plan: Plan) -> None:
    """Copy the key where the container's user can read it: mode 0644 inside a folder only we can open."""
    if plan.api_key_file is None:
        return
    write_for_container(secret_copy_path(plan.data_dir, plan.project), plan.api_key_file.read_bytes())
