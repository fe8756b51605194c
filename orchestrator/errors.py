"""Errors the CLI turns into one line and an exit code; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class OrchestratorError(Exception):
    """A failure the user can act on. The message is one line that says what to do."""

    exit_code = 1


class UsageError(OrchestratorError):
    """Bad input: unknown names, malformed config, conflicting options."""

    exit_code = 2


class ConfigError(UsageError):
    """orchestrator.yaml or ORCHESTRATOR_* variables are malformed or name unknown keys."""


class NotAvailableYet(UsageError):
    """A command whose capability has not been built yet."""
