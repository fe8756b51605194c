"""What the workflow needs from a container engine, as a protocol: images, builds, one-off runs and compose
projects. `DockerEngine` (orchestrator.executors.docker) is the real one; tests hand in a recording fake.
The value types and errors both sides share live here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orchestrator.core.facts import EngineFacts
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.core.bases import BaseSpec
    from orchestrator.core.plan.container import ContainerSpec

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
PULL_FAILURES = (
    "failed to resolve source metadata",
    "pull access denied",
    "failed to do request",
    "dial tcp",
    "no such host",
)


@dataclass(frozen=True)
class BaseOutcome:
    """A local base image: made now (and how long it took), or already there with the same recipe."""

    tag: str
    made: bool
    seconds: float


class CommandFailed(OrchestratorError):
    def __init__(self, program: str, exit_code: int) -> None:
        super().__init__(f"{program} exited with code {exit_code}")
        self.program = program
        self.program_exit_code = exit_code


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
    labels: Mapping[str, str] = field(default_factory=dict)
    # The kernel's OOM killer ended it (Docker's State.OOMKilled; it stays set across restarts).
    oom_killed: bool = False


class Engine(Protocol):
    """The container engine as the workflow uses it; each method is one docker concept."""

    def require(self, *, buildx: bool = False, compose: bool = False) -> None: ...

    def require_platform(self, platform: str) -> None: ...

    def versions(self) -> EngineFacts: ...

    def image_id(self, tag: str) -> str | None: ...

    def image_labels(self, tag: str) -> Mapping[str, str] | None: ...

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
        on_progress: Callable[[BuildProgress], None] = ...,
        cache: str | None = None,
    ) -> None: ...

    def push(self, tag: str, registry: str) -> tuple[str, str | None]: ...

    def pull(self, reference: str, on_layer: Callable[[str, str], None]) -> None:
        """Pull an image; each layer's status (layer id, status) on the way; EngineError on failure."""

    def image_platform(self, tag: str) -> str:
        """os/architecture of a local image."""

    def repo_digest(self, reference: str) -> str | None:
        """The registry digest (sha256:...) of the image pulled as reference."""

    def tag(self, source: str, target: str) -> None: ...

    def read_files(
        self, tag: str, paths: Sequence[str], platform: str | None = None
    ) -> dict[str, str | None]:
        """Files' texts inside an image (of that platform), by path (None for one that is not there)."""

    def promote(self, staged: str, tag: str, labels: Mapping[str, str], platform: str) -> None:
        """The staged image (of that platform), with these labels added (a config-only step), under tag;
        the staged tag goes. Until then tag still names the image the last finished build made."""

    def make_base(self, spec: BaseSpec, work_dir: Path, *, rebuild: bool = False) -> BaseOutcome: ...

    def stream(self, spec: ContainerSpec, argv: Sequence[str], env: Mapping[str, str]) -> Iterable[str]: ...

    def compose_up(self, file: Path, project: str) -> None: ...

    def compose_down(self, file: Path, project: str) -> None: ...

    def service(self, project: str, name: str) -> ServiceState | None: ...

    def service_memory(self, project: str, name: str) -> int | None:
        """Bytes the service's running container holds now, as Docker counts it (None: not running)."""

    def files_in_use(self) -> Mapping[Path, str]:
        """The host files our running containers (any project) name on their command lines, through
        their mounts (the model, its MTP file), each with the container that maps it."""

    def service_logs(
        self, project: str, name: str, *, tail: int | None = None, follow: bool = False
    ) -> Iterable[str]: ...
