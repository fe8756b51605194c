"""What both runtimes (executors.runtime's containers, executors.native_runtime's host processes) share:
the Runtime protocol every command drives, the server's state as `status` shows it, what served before a
replacement (to start it again), and the checks both make (the key clients send, a free address)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.core.plan import Plan
from orchestrator.core.plan.jobs import ToolJob
from orchestrator.core.plan.programs import BenchPlan
from orchestrator.core.plan.server import Address
from orchestrator.errors import UsageError
from orchestrator.executors.engine import BuildProgress
from orchestrator.executors.health import Probe
from orchestrator.executors.host import Host
from orchestrator.executors.images import BuildOutcome


@dataclass(frozen=True)
class ServerState:
    """The server as `status` shows it, whichever runtime serves it."""

    state: str
    running: bool
    health: str | None = None
    container: str | None = None
    image: str | None = None
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    log: str | None = None
    # The model file changed on disk since the server loaded it (None: not known).
    model_changed: bool | None = None
    # The kernel's OOM killer ended it (then restarted, or not).
    oom_killed: bool = False
    # What its container holds now, as Docker counts it (None: not known, or not a container).
    memory_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deployed:
    """What serves under a plan's name before it is replaced, kept to start it again should the
    replacement not become ready: where it answers, and the compose file's text and the API key copy it
    reads (a container), or its command line and environment (native)."""

    address: Address
    compose: str | None = None
    # The files of ours the compose file names (the key and certificate copies, the proxy's
    # configuration), as they were: what it ran with.
    files: Mapping[Path, bytes] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


class Runtime(Protocol):
    kind: str

    def require(self, *, serving: bool) -> None:
        """What this runtime needs before anything runs (the engine and its plugins)."""

    def is_built(self, plan: Plan) -> bool: ...

    def build(
        self, plan: Plan, *, rebuild: bool, on_progress: Callable[[BuildProgress], None]
    ) -> BuildOutcome: ...

    def check_port(self, plan: Plan) -> None:
        """The server's address is free, or held by this plan's own server."""

    def start(self, plan: Plan) -> bool:
        """Start (or replace) the server; False when the same one already runs and was kept."""

    def stop(self, plan: Plan) -> bool:
        """Stop the server; whether there was one."""

    def state(self, plan: Plan) -> ServerState: ...

    def probe(self, plan: Plan, at: Address | None = None) -> Probe:
        """Is the server started by `start` (or `restore`) ready, loading, or gone? at: where it answers,
        when not where the plan publishes it (a server started again from what ran before)."""

    def deployed(self, plan: Plan) -> Deployed | None:
        """What runs under the plan's name now, to start again should its replacement fail (None: nothing
        runs; a native runtime also answers None when this very plan runs). A container's is always
        returned: what its services read is compared by compose once the new document is written."""

    def restore(self, plan: Plan, deployed: Deployed) -> None:
        """Start again what `deployed` saw running, in place of the plan's server."""

    def logs(self, plan: Plan, *, tail: int | None, follow: bool = False) -> Iterable[str]: ...

    def run(self, plan: Plan) -> Iterable[str]:
        """The plan's llama-cli answer, line by line."""

    def bench(self, plan: Plan, bench: BenchPlan) -> Iterable[str]:
        """One llama-batched-bench run, line by line."""

    def tool(self, plan: Plan, job: ToolJob) -> Iterable[str]:
        """One run of a shipped tool over the owner's files (eval, quantize), line by line."""

    def location(self, plan: Plan) -> str:
        """What the user can read to see how the server runs (the compose file, the log)."""


def api_key(plan: Plan) -> str | None:
    """The key clients must send, read from the user's file (None when the plan has none)."""
    return (
        plan.api_key_file.read_text().strip() if plan.api_key_file and plan.api_key_file.is_file() else None
    )


def require_free(host: Host, address: Address) -> None:
    if not host.address_free(address.host, address.port):
        raise UsageError(
            f"port {address.port} on {address.host} is already in use; stop what holds it or pass --port N"
        )
