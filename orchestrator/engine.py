"""The only module that talks to Docker, through python-on-whales. It carries out plans; it decides nothing."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from python_on_whales import DockerClient

_STEP = re.compile(r"^#(?P<id>\d+) \[(?P<stage>[\w.-]+)(?: \d+/\d+)?\] (?P<what>.*)$")
_ERROR = re.compile(r"^#(?P<id>\d+) ERROR: (?P<what>.*)$")


class EngineError(OrchestratorError):
    """Docker is missing, not running, or lacks a plugin this tool needs."""


class BuildFailed(OrchestratorError):
    def __init__(self, stage: str, step: str, log: Path, hint: str = "", pull_failed: bool = False) -> None:
        super().__init__(f"image build failed in stage '{stage}' ({step}){hint}; full log: {log}")
        self.stage = stage
        self.log = log
        self.pull_failed = pull_failed


# What BuildKit says when a base image cannot be had from a registry.
_PULL_FAILURES = (
    "failed to resolve source metadata",
    "pull access denied",
    "failed to do request",
    "dial tcp",
    "no such host",
)


class CommandFailed(OrchestratorError):
    def __init__(self, program: str, exit_code: int) -> None:
        super().__init__(f"{program} exited with code {exit_code}")
        self.program = program
        self.exit_code = exit_code


@dataclass
class BuildProgress:
    """Follows BuildKit's plain output: which stage runs now, and which step failed."""

    stage: str = "starting"
    step: str = ""
    failed_stage: str | None = None
    failed_step: str = ""

    def __post_init__(self) -> None:
        self._steps: dict[str, tuple[str, str]] = {}

    def feed(self, line: str) -> None:
        line = line.rstrip()
        if match := _STEP.match(line):
            self._steps[match["id"]] = (match["stage"], match["what"])
            self.stage, self.step = match["stage"], match["what"]
        elif (match := _ERROR.match(line)) and self.failed_stage is None:
            self.failed_stage, self.failed_step = self._steps.get(match["id"], ("unknown", match["what"]))


@dataclass(frozen=True)
class EngineFacts:
    server: str | None = None
    runtimes: tuple[str, ...] = ()
    buildx: str | None = None
    compose: str | None = None
    error: str | None = None


class Engine:
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
        import os
        import platform as host

        wanted = platform.split("/")[-1]
        here = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(host.machine(), host.machine())
        emulator = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}.get(wanted, "")
        if wanted != here and not os.path.exists(f"/proc/sys/fs/binfmt_misc/{emulator}"):
            raise EngineError(
                f"this {here} host cannot build {platform} images without QEMU emulation; build on an {wanted} "
                f"machine, register QEMU (binfmt), or pass --platform linux/{here}"
            )

    def _plugin_works(self, args: list[str]) -> bool:
        import subprocess

        out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
        return out.returncode == 0

    # --- images -------------------------------------------------------------------------------

    def image_id(self, tag: str) -> str | None:
        return str(self.docker.image.inspect(tag).id) if self.docker.image.exists(tag) else None

    def image_labels(self, tag: str) -> Mapping[str, str] | None:
        if not self.docker.image.exists(tag):
            return None
        labels = self.docker.image.inspect(tag).config.labels
        return dict(labels or {})

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
                    progress.failed_stage is None and any(marker in str(exc) for marker in _PULL_FAILURES)
                )
                if pull_failed:
                    hint = (
                        ": the base image could not be pulled; without a registry run "
                        "'orchestrator bases bootstrap' and build with --bases local"
                    )
                raise BuildFailed(
                    progress.failed_stage or progress.stage, step, log_path, hint, pull_failed
                ) from None

    def import_rootfs(self, tarball: Path, tag: str, changes: Sequence[str]) -> None:
        self.docker.image.import_(tarball, tag=tag, changes=list(changes))

    def stream(self, spec: Any, argv: Sequence[str], env: Mapping[str, str]) -> Iterable[str]:
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


@dataclass(frozen=True)
class ServiceState:
    """What `status` shows of the running service, read from the engine."""

    container: str
    image: str
    state: str
    health: str | None
    started_at: str | None
    exit_code: int | None
    restarts: int
    config_hash: str | None
    published: tuple[str, ...]


class Compose:
    """One compose project: the generated file, and the project's containers."""

    def __init__(self, file: Path, project: str) -> None:
        from python_on_whales import DockerClient

        self.file = file
        self.project = project
        self.docker = DockerClient(compose_files=[file], compose_project_name=project)

    def up(self) -> None:
        from python_on_whales.exceptions import DockerException

        try:
            self.docker.compose.up(detach=True, quiet=True, pull="never")
        except DockerException as exc:
            raise OrchestratorError(
                f"docker compose up failed: {_last_line(exc.stderr or exc.stdout or '')}"
            ) from None

    def down(self) -> None:
        # Never volumes: models and anything the user keeps stay where they are.
        self.docker.compose.down(volumes=False, quiet=True)

    def _container(self, name: str) -> Any:
        # By compose's labels, so the service is found even before (or without) the compose file.
        found = self.docker.container.list(
            all=True,
            filters=[
                ("label", f"com.docker.compose.project={self.project}"),
                ("label", f"com.docker.compose.service={name}"),
            ],
        )
        return found[0] if found else None

    def service(self, name: str) -> ServiceState | None:
        container = self._container(name)
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
            published=tuple(
                f"{binding.host_ip or ''}:{binding.host_port or ''}"
                for bindings in (container.host_config.port_bindings or {}).values()
                for binding in (bindings or [])
            ),
        )

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False) -> Iterable[str]:
        container = self._container(name)
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
