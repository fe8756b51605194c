"""What every step is handed besides the plan: the executors that carry it out (an `Engine` and a
`Host`, as protocols; tests hand in recording fakes) and the reporter that shows progress and asks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.plan import Plan
from orchestrator.executors.engine import BuildProgress, Engine
from orchestrator.executors.health import Probe
from orchestrator.executors.host import Host
from orchestrator.executors.runtime import runtime_for
from orchestrator.executors.server_state import Runtime


class BuildView(Protocol):
    def update(self, progress: BuildProgress) -> None: ...


class WaitView(Protocol):
    def update(self, probe: Probe, elapsed: float, last_line: str) -> None: ...


class PullView(Protocol):
    def update(self, layer: str, status: str) -> None: ...


@dataclass(frozen=True)
class Reporter:
    note: Callable[[str], None]
    building: Callable[[str], AbstractContextManager[BuildView]]
    waiting: Callable[[str], AbstractContextManager[WaitView]]
    ask: Callable[[str], bool] | None
    # A byte counter per file transferred: (label, total bytes, bytes already there).
    transfer: Callable[[str, int, int], AbstractContextManager[Callable[[int], None]]]
    # An image pull, each layer's status.
    pulling: Callable[[str], AbstractContextManager[PullView]]


@dataclass(frozen=True)
class Executors:
    """What carries a plan out: the container engine and this host."""

    engine: Engine
    host: Host

    def runtime(self, plan: Plan) -> Runtime:
        return runtime_for(plan, self.engine, self.host)
