"""The only module that talks to Docker, through python-on-whales: `DockerEngine` carries out what the
workflow asks of an `Engine` (orchestrator.executors.engine); it decides nothing."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orchestrator.core.bases import BaseSpec
from orchestrator.core.facts import EngineFacts
from orchestrator.core.plan.container import ContainerSpec
from orchestrator.core.plan.layout import TARGET_LABEL
from orchestrator.errors import OrchestratorError
from orchestrator.executors.bases import DIGEST_LABEL, image_env, rootfs_tarball
from orchestrator.executors.engine import (
    PULL_FAILURES,
    BaseOutcome,
    BuildFailed,
    BuildProgress,
    CommandFailed,
    EngineError,
    ServiceState,
)
from orchestrator.executors.probe import require_emulation

if TYPE_CHECKING:
    from python_on_whales import DockerClient


class DockerEngine:
    def __init__(self, client: DockerClient | None = None) -> None:
        if client is None:
            from python_on_whales import DockerClient

            client = DockerClient()
        self.docker = client

    # --- checks -------------------------------------------------------------------------------

    def require(self, *, buildx: bool = False, compose: bool = False) -> None:
        from python_on_whales.exceptions import DockerException

        if shutil.which("docker") is None:
            raise EngineError("the docker command is not installed; install Docker Engine >= 23")
        try:
            self.docker.version()
        except DockerException:
            raise EngineError(
                "cannot reach the Docker engine; start it (systemctl start docker) or check DOCKER_HOST"
            ) from None
        if buildx and not self._plugin_works(["buildx", "version"]):
            raise EngineError(
                "docker buildx is missing; install the docker-buildx plugin (scripts/install-docker-plugins.sh)"
            )
        if compose and not self._plugin_works(["compose", "version"]):
            raise EngineError(
                "docker compose v2 is missing; install the docker-compose plugin "
                "(scripts/install-docker-plugins.sh)"
            )

    def push(self, tag: str, registry: str) -> tuple[str, str | None]:
        """Tag a local image into a registry and push it; the pushed reference and its digest."""
        from python_on_whales.exceptions import DockerException

        remote = f"{registry.rstrip('/')}/{tag}"
        try:
            self.docker.image.tag(tag, remote)
            self.docker.image.push(remote, quiet=True)
            digests = self.docker.image.inspect(remote).repo_digests or []
        except DockerException as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "failed"
            raise EngineError(
                f"pushing {remote} failed ({last}); log in first (docker login {registry.split('/')[0]})"
            ) from None
        prefix = remote.rsplit(":", 1)[0] + "@"
        return remote, next((d.split("@", 1)[1] for d in digests if d.startswith(prefix)), None)

    def versions(self) -> EngineFacts:
        """What `doctor` reports about Docker: never raises, an unreachable engine is a fact too."""
        import subprocess

        from python_on_whales.exceptions import DockerException

        if shutil.which("docker") is None:
            return EngineFacts(error="the docker command is not installed")
        try:
            info = self.docker.info()
        except DockerException as exc:
            return EngineFacts(error=str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreachable")

        def plugin(args: list[str]) -> str | None:
            out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
            return out.stdout.strip() if out.returncode == 0 else None

        return EngineFacts(
            server=info.server_version,
            runtimes=tuple(sorted((info.runtimes or {}).keys())),
            buildx=plugin(["buildx", "version"]),
            compose=plugin(["compose", "version"]),
        )

    def require_platform(self, platform: str) -> None:
        """Building for another architecture runs its compilers under QEMU: say so before hours are lost."""
        require_emulation(platform)

    def _plugin_works(self, args: list[str]) -> bool:
        import subprocess

        out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
        return out.returncode == 0

    # --- images -------------------------------------------------------------------------------

    def image_id(self, tag: str) -> str | None:
        return str(self.docker.image.inspect(tag).id) if self.docker.image.exists(tag) else None

    def read_files(
        self, tag: str, paths: Sequence[str], platform: str | None = None
    ) -> dict[str, str | None]:
        from python_on_whales.exceptions import DockerException

        # One container for all of them (under QEMU each start is slow): each file's text, then a record
        # separator; a missing file prints a lone 0x18 instead.
        script = (
            'for f in "$@"; do if [ -f "$f" ]; then cat "$f"; else printf "\\030"; fi; printf "\\036"; done'
        )
        try:
            text = str(
                self.docker.run(
                    tag,
                    ["-c", script, "sh", *paths],
                    entrypoint="sh",
                    remove=True,
                    healthcheck=False,
                    platform=platform,
                )
            )
        except DockerException:
            return dict.fromkeys(paths)
        parts = text.split("\x1e")
        return {path: None if part == "\x18" else part for path, part in zip(paths, parts, strict=False)}

    def promote(self, staged: str, tag: str, labels: Mapping[str, str], platform: str) -> None:
        import json
        import tempfile

        from python_on_whales.exceptions import DockerException

        with tempfile.TemporaryDirectory(prefix="step-flash-labels-") as folder:
            lines = [f"FROM {staged}", *(f"LABEL {key}={json.dumps(value)}" for key, value in labels.items())]
            (Path(folder) / "Dockerfile").write_text("\n".join(lines) + "\n")
            try:
                # The image's own platform: without it BuildKit looks for the host's and, not finding that
                # locally, asks a registry.
                self.docker.buildx.build(
                    folder, tags=[tag], platforms=[platform], load=True, pull=False, progress=False
                )
            except DockerException as exc:
                last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit {exc.return_code}"]
                raise OrchestratorError(
                    f"could not label the built image {staged} as {tag}: {last[0]}; it is kept as {staged}"
                ) from None
        self.docker.image.remove(staged)

    def image_labels(self, tag: str) -> Mapping[str, str] | None:
        if not self.docker.image.exists(tag):
            return None
        labels = self.docker.image.inspect(tag).config.labels
        return dict(labels or {})

    def pull(self, reference: str, on_layer: Callable[[str, str], None]) -> None:
        """Pull an image, each layer's status as docker reports it (layer id, status); one line on failure."""
        from python_on_whales.exceptions import DockerException

        last = ""
        try:
            lines = cast(Iterable[tuple[str, bytes]], self.docker.image.pull(reference, stream_logs=True))
            for _name, raw in lines:
                line = bytes(raw).decode(errors="replace").strip()
                last = line or last
                layer, sep, status = line.partition(": ")
                if sep and re.fullmatch(r"[0-9a-f]{12}", layer):
                    on_layer(layer, status)
        except DockerException as exc:
            said = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise EngineError(
                f"docker pull {reference} failed: {said[-1] if said else last or exc.return_code}"
            ) from None

    def image_platform(self, tag: str) -> str:
        image = self.docker.image.inspect(tag)
        return f"{image.os}/{image.architecture}"

    def repo_digest(self, reference: str) -> str | None:
        """The registry digest of the image pulled as reference (sha256:...), where docker knows it."""
        repository = (
            reference.split("@", 1)[0].rsplit(":", 1)[0] if "@" not in reference else reference.split("@")[0]
        )
        for entry in self.docker.image.inspect(reference).repo_digests or []:
            name, _, digest = entry.partition("@")
            if name == repository:
                return digest
        return None

    def tag(self, source: str, target: str) -> None:
        self.docker.image.tag(source, target)

    def build(
        self,
        *,
        context: Path,
        dockerfile: Path,
        stage: str,
        tag: str,
        build_args: Mapping[str, str],
        labels: Mapping[str, str],
        platform: str | None,
        log_path: Path,
        on_progress: Callable[[BuildProgress], None] = lambda _: None,
        cache: str | None = None,
    ) -> None:
        from python_on_whales.exceptions import DockerException

        progress = BuildProgress()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            try:
                stream = self.docker.buildx.build(
                    context,
                    file=dockerfile,
                    target=stage,
                    tags=[tag],
                    build_args=dict(build_args),
                    labels=dict(labels),
                    platforms=[platform] if platform else None,
                    load=True,
                    progress="plain",
                    stream_logs=True,
                    cache_from=cache,
                    cache_to=f"{cache},mode=max" if cache else None,
                )
                for line in _lines(stream):
                    log.write(line if line.endswith("\n") else line + "\n")
                    progress.feed(line)
                    on_progress(progress)
            except DockerException as exc:
                log.write(f"\n{exc}\n")
                log.flush()
                if progress.failed_stage is None:
                    for line in str(exc).splitlines():
                        progress.feed(line)
                step = progress.failed_step or progress.step
                hint = ""
                pull_failed = step.startswith("load metadata for") or (
                    progress.failed_stage is None and any(marker in str(exc) for marker in PULL_FAILURES)
                )
                if pull_failed:
                    hint = (
                        ": the base image could not be pulled; without a registry run "
                        "'orchestrator bases bootstrap' and build with --bases local"
                    )
                raise BuildFailed(
                    progress.failed_stage or progress.stage, step, log_path, hint, pull_failed
                ) from None

    def import_rootfs(
        self, tarball: Path, tag: str, *, platform: str, env: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        """An image of a root file system. Not `docker import`: Engine 20.10 records the host's architecture
        whatever --platform says; a build FROM scratch records the platform asked for."""
        import json

        lines = [
            "FROM scratch",
            f"ADD {tarball.name} /",
            *(f"ENV {key}={json.dumps(value)}" for key, value in env.items()),
            *(f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()),
            'CMD ["/bin/bash"]',
        ]
        dockerfile = tarball.parent / "Dockerfile"
        dockerfile.write_text("\n".join(lines) + "\n")
        self.docker.buildx.build(
            tarball.parent,
            file=dockerfile,
            tags=[tag],
            platforms=[platform],
            load=True,
            pull=False,
            progress=False,
        )

    def make_base(self, spec: BaseSpec, work_dir: Path, *, rebuild: bool = False) -> BaseOutcome:
        labels = self.image_labels(spec.tag)
        if labels is not None and labels.get(DIGEST_LABEL) == spec.digest and not rebuild:
            return BaseOutcome(spec.tag, made=False, seconds=0.0)
        started = time.monotonic()
        with rootfs_tarball(spec, work_dir) as tarball:
            self.import_rootfs(
                tarball,
                spec.tag,
                platform=spec.platform,
                env=image_env(spec),
                labels={DIGEST_LABEL: spec.digest},
            )
        return BaseOutcome(spec.tag, made=True, seconds=time.monotonic() - started)

    def stream(self, spec: ContainerSpec, argv: Sequence[str], env: Mapping[str, str]) -> Iterable[str]:
        """Run a one-off command in a fresh container (a plan's ContainerSpec); yield its output lines.

        Raises CommandFailed when it exits non-zero, after every line it printed was yielded."""
        from python_on_whales.exceptions import DockerException

        kwargs: dict[str, Any] = {
            "remove": True,
            "envs": dict(env),
            "volumes": list(spec.volumes),
            "devices": list(spec.devices),
            "user": spec.user,
            "read_only": spec.read_only,
            "tmpfs": list(spec.tmpfs),
            "cap_drop": list(spec.cap_drop),
            "security_options": list(spec.security_opt),
            # The image's health check is the server's; a one-off command has no /health.
            "healthcheck": False,
            "stream": True,
        }
        if spec.gpus:
            kwargs["gpus"] = spec.gpus
        if spec.group_add:
            kwargs["groups_add"] = [str(g) for g in spec.group_add]
        if spec.memlock_unlimited:
            kwargs["ulimit"] = ["memlock=-1:-1"]
        if spec.network:
            kwargs["networks"] = [spec.network]
        pending = ""
        try:
            for _source, chunk in self.docker.run(spec.image, list(argv), **kwargs):
                pending += bytes(chunk).decode(errors="replace")
                *complete, pending = pending.split("\n")
                yield from complete
        except DockerException as exc:
            if pending:
                yield pending
            raise CommandFailed(argv[0], exc.return_code) from None
        if pending:
            yield pending

    # --- compose projects ---------------------------------------------------------------------

    def _compose(self, file: Path, project: str) -> DockerClient:
        from python_on_whales import DockerClient

        return DockerClient(compose_files=[file], compose_project_name=project)

    def compose_up(self, file: Path, project: str) -> None:
        from python_on_whales.exceptions import DockerException

        try:
            self._compose(file, project).compose.up(detach=True, quiet=True, pull="never")
        except DockerException as exc:
            raise OrchestratorError(
                f"docker compose up failed: {_last_line(exc.stderr or exc.stdout or '')}"
            ) from None

    def compose_down(self, file: Path, project: str) -> None:
        # Never volumes: models and anything the user keeps stay where they are.
        self._compose(file, project).compose.down(volumes=False, quiet=True)

    def _container(self, project: str, name: str) -> Any:
        # By compose's labels, so the service is found even before (or without) the compose file.
        found = self.docker.container.list(
            all=True,
            filters=[
                ("label", f"com.docker.compose.project={project}"),
                ("label", f"com.docker.compose.service={name}"),
            ],
        )
        return found[0] if found else None

    def service(self, project: str, name: str) -> ServiceState | None:
        container = self._container(project, name)
        if container is None:
            return None
        state = container.state
        health = state.health.status if state.health else None
        labels = container.config.labels or {}
        return ServiceState(
            container=container.name,
            image=str(container.config.image),
            state=str(state.status),
            health=str(health) if health else None,
            started_at=state.started_at.isoformat() if state.started_at else None,
            exit_code=state.exit_code,
            restarts=int(container.restart_count or 0),
            config_hash=labels.get("com.docker.compose.config-hash"),
            labels=dict(labels),
            oom_killed=bool(container.state.oom_killed),
            published=tuple(
                f"{binding.host_ip or ''}:{binding.host_port or ''}"
                for bindings in (container.host_config.port_bindings or {}).values()
                for binding in (bindings or [])
            ),
        )

    def files_in_use(self) -> Mapping[Path, str]:
        from python_on_whales.exceptions import DockerException

        used: dict[Path, str] = {}
        if shutil.which("docker") is None:
            return used
        try:
            running = self.docker.container.list(filters=[("label", TARGET_LABEL)])
        except DockerException:
            return used  # no engine answers: no container runs
        for container in running:
            mounts = [(str(m.destination), str(m.source)) for m in container.mounts or []]
            for arg in [str(a) for a in container.config.cmd or []]:
                for inside, source in mounts:
                    if arg == inside:  # a file mounted alone (an MTP file or projector from elsewhere)
                        used[Path(source)] = str(container.name)
                    elif arg.startswith(inside.rstrip("/") + "/"):
                        used[Path(source) / arg[len(inside.rstrip("/")) + 1 :]] = str(container.name)
        return used

    def service_memory(self, project: str, name: str) -> int | None:
        """What the service's running container holds now, as Docker counts it (docker stats)."""
        container = self._container(project, name)
        if container is None or container.state.status != "running":
            return None
        stats = self.docker.stats(containers=[container])
        return int(stats[0].memory_used) if stats else None

    def service_logs(
        self, project: str, name: str, *, tail: int | None = None, follow: bool = False
    ) -> Iterable[str]:
        container = self._container(project, name)
        if container is None:
            return
        if follow:
            stream: Iterable[tuple[str, bytes]] = self.docker.container.logs(  # type: ignore[assignment]
                container, follow=True, stream=True
            )
            for _source, chunk in stream:
                yield from chunk.decode(errors="replace").splitlines()
            return
        yield from str(self.docker.container.logs(container, tail=tail)).splitlines()


def _lines(stream: Any) -> Iterable[str]:
    for chunk in stream:
        yield from str(chunk).splitlines()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
