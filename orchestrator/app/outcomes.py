"""What a command returns: an outcome that shows itself, as rich text for people or as JSON for
programs, and says the exit code it means. Each outcome is defined, and shown, beside the command that
returns it (orchestrator.app.commands); the renderer only hands it the screen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console

from orchestrator.errors import ExitCode


class Screen(Protocol):
    """Where an outcome is shown: `out` carries the result (only JSON with --json), `live` what is
    said on the way (stderr with --json)."""

    @property
    def out(self) -> Console: ...

    @property
    def live(self) -> Console: ...

    @property
    def as_json(self) -> bool: ...

    def json(self, data: object) -> None: ...

    def either(self, data: object, text: Callable[[], object]) -> None:
        """data as JSON with --json, otherwise what text() prints."""


class Outcome(Protocol):
    def show(self, screen: Screen) -> ExitCode: ...


@dataclass(frozen=True)
class Lines:
    """Output streamed as it comes (logs, llama-cli): printed line by line, never collected."""

    lines: Iterable[str]

    def show(self, screen: Screen) -> ExitCode:
        for line in self.lines:
            print(line, flush=True)
        return ExitCode.OK
