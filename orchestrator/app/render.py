"""The one renderer of a command: its live views (build stage, model loading, transfers, questions)
while it runs, and at the end what it returned (`Renderer.show` hands the outcome the screen; each
outcome shows itself, see orchestrator.app.outcomes), or its error or interruption as one line. With
--json, stdout carries only JSON and the live views go to stderr. The pieces several outcomes print
(a key-value grid, a build's one line) are here too."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.table import Table

from orchestrator.app.outcomes import Outcome
from orchestrator.app.steps.context import Reporter
from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.executors.engine import BuildProgress
from orchestrator.executors.health import Probe
from orchestrator.executors.images import BuildOutcome


def kv_table(rows: Sequence[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


class _Spinner:
    """A rich status line used as a context manager, started when entered."""

    def __init__(self, console: Console, text: str) -> None:
        self.started = time.monotonic()
        self._status = console.status(text)

    def __enter__(self) -> Self:
        self._status.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._status.__exit__(kind, exc, tb)

    def show(self, text: str) -> None:
        self._status.update(text)


def _clip(text: str, width: int) -> str:
    return text if len(text) < width else text[: width - 3] + "..."


class BuildStatus(_Spinner):
    """The build stage that runs now, with the time so far."""

    def __init__(self, console: Console, tag: str) -> None:
        super().__init__(console, f"building {tag}")
        self.tag = tag

    def update(self, progress: BuildProgress) -> None:
        elapsed = time.monotonic() - self.started
        self.show(
            f"building {self.tag}  [{elapsed:4.0f} s]  stage [bold]{progress.stage}[/]: {_clip(progress.step, 70)}"
        )


def build_text(outcome: BuildOutcome) -> str:
    if outcome.pulled:
        return f"pulled {outcome.pulled} in {outcome.seconds:.0f} s as {outcome.tag}: its labels are the plan's, nothing compiled"
    if outcome.built:
        page = f"; web UI: {outcome.webui}" if outcome.webui else ""
        return f"built {outcome.tag} in {outcome.seconds:.0f} s (log: {outcome.log}){page}"
    return f"{outcome.tag} is up to date (same plan, Dockerfile and build script); --rebuild forces a build"


class PullStatus(_Spinner):
    """A pull: each layer's latest status as docker reports it."""

    def __init__(self, console: Console, reference: str) -> None:
        super().__init__(console, f"pulling {reference}")
        self.reference = reference
        self.layers: dict[str, str] = {}

    def update(self, layer: str, status: str) -> None:
        self.layers[layer] = status
        done = sum(s.startswith(("Pull complete", "Already exists")) for s in self.layers.values())
        elapsed = time.monotonic() - self.started
        rows = "\n".join(f"  {name}  {_clip(text, 60)}" for name, text in list(self.layers.items())[-12:])
        self.show(f"pulling {self.reference}  [{elapsed:4.0f} s]  {done}/{len(self.layers)} layers\n{rows}")


class WaitStatus(_Spinner):
    """While the model loads: elapsed time, readiness, and the server's latest log line."""

    def __init__(self, console: Console, what: str) -> None:
        super().__init__(console, what)
        self.what = what

    def update(self, probe: Probe, elapsed: float, last_line: str) -> None:
        self.show(f"{self.what}  [{elapsed:4.0f} s]  {probe.readiness}\n[dim]{_clip(last_line, 90)}[/]")


@contextmanager
def byte_progress(console: Console, label: str, total: int, initial: int) -> Iterator[Callable[[int], None]]:
    """A transfer or hashing bar: bytes done of total, speed and time left."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, completed=initial)
        yield lambda n: progress.advance(task, n)


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class Renderer:
    """One per command: rich text on stdout, or JSON on stdout with everything live on stderr."""

    def __init__(self, *, as_json: bool, interactive: bool) -> None:
        self.as_json = as_json
        self.out = Console()
        self.live = Console(stderr=True) if as_json else self.out
        self.errors = Console(stderr=True)
        self.can_ask = interactive

    # --- while a command runs -------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.live.print(text, highlight=False)

    def ask(self, question: str) -> bool:
        return self.live.input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}

    def reporter(self) -> Reporter:
        return Reporter(
            note=self.note,
            building=lambda tag: BuildStatus(self.live, tag),
            waiting=lambda what: WaitStatus(self.live, what),
            pulling=lambda reference: PullStatus(self.live, reference),
            ask=self.ask if self.can_ask else None,
            transfer=self.byte_progress,
        )

    def status(self, text: str) -> AbstractContextManager[object]:
        return self.live.status(text)

    def byte_progress(
        self, label: str, total: int, initial: int
    ) -> AbstractContextManager[Callable[[int], None]]:
        return byte_progress(self.live, label, total, initial)

    # --- when it ends ---------------------------------------------------------------------------

    def json(self, data: object) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")

    def error(self, exc: OrchestratorError) -> None:
        if exc.log_tail:
            self.errors.print(exc.log_tail, highlight=False, markup=False)
        self.errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        if self.as_json:
            self.json({"error": {"exit_code": int(exc.exit_code), "message": str(exc)}})

    def interrupted(self, code: ExitCode) -> None:
        how = "terminated" if code == ExitCode.TERMINATED else "interrupted"
        message = (
            f"{how}; nothing half-done was kept where the next run would trust it: run it again to carry on"
        )
        self.errors.print(message, highlight=False, soft_wrap=True)
        if self.as_json:
            self.json({"error": {"exit_code": int(code), "message": message}})

    def show(self, outcome: Outcome) -> ExitCode:
        """Print what a command returned; the exit code it means."""
        return outcome.show(self)

    def either(self, data: object, text: Callable[[], object]) -> None:
        if self.as_json:
            self.json(data)
        else:
            text()
