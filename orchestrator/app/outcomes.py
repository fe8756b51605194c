"""What each command returns: plain values the renderer prints as rich text or JSON, each with the exit
code it means. Workflow results (Served, Stopped, Status, ...) are outcomes too; see `Outcome`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.app.workers import WorkerStarted, WorkerStatus, WorkerStopped
from orchestrator.app.workflow import Served, ServingComparison, Status, Stopped
from orchestrator.core.bench import BenchRecord
from orchestrator.core.catalogue import Target
from orchestrator.core.doctor import Check
from orchestrator.core.plan import Plan
from orchestrator.executors.engine import BaseOutcome
from orchestrator.executors.images import BuildOutcome
from orchestrator.models.pull import Pulled
from orchestrator.models.store import Entry, Listed, Verified


@dataclass(frozen=True)
class TargetList:
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class PlanShown:
    plan: Plan


@dataclass(frozen=True)
class BuildDone:
    outcome: BuildOutcome
    pushed: str | None
    digest: str | None
    image_id: str | None


@dataclass(frozen=True)
class BasesMade:
    bases: tuple[BaseOutcome, ...]


@dataclass(frozen=True)
class Lines:
    """Output streamed as it comes (logs, llama-cli): printed line by line, never collected."""

    lines: Iterable[str]


@dataclass(frozen=True)
class BenchDone:
    records: tuple[BenchRecord, ...]
    results: Path

    @property
    def incomplete(self) -> BenchRecord | None:
        return next((r for r in self.records if not r.complete), None)


@dataclass(frozen=True)
class BenchReport:
    png: Path | None
    summary: Path
    serving_png: Path | None = None


@dataclass(frozen=True)
class ServingDone:
    comparison: ServingComparison
    results: Path


@dataclass(frozen=True)
class ModelPulled:
    pulled: Pulled


@dataclass(frozen=True)
class ModelAdded:
    entry: Entry


@dataclass(frozen=True)
class ModelListing:
    rows: tuple[Listed, ...]
    directory: Path


@dataclass(frozen=True)
class ModelVerified:
    first: Path
    verified: Verified


@dataclass(frozen=True)
class ModelRemoved:
    name: str
    deleted: tuple[Path, ...]


@dataclass(frozen=True)
class Diagnosis:
    target: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


@dataclass(frozen=True)
class CiMatrix:
    matrix: Mapping[str, Any]


Outcome = (
    TargetList
    | PlanShown
    | BuildDone
    | BasesMade
    | Lines
    | Served
    | Stopped
    | Status
    | BenchDone
    | BenchReport
    | ServingDone
    | WorkerStarted
    | WorkerStopped
    | WorkerStatus
    | ModelPulled
    | ModelAdded
    | ModelListing
    | ModelVerified
    | ModelRemoved
    | Diagnosis
    | CiMatrix
)
