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


class InvalidModel(OrchestratorError):
    """A model file that is missing, truncated, damaged, incomplete or not what it claims to be."""

    exit_code = 3


class WontFit(OrchestratorError):
    """The plan needs more memory than the machine can give; the message names the fix."""

    exit_code = 4
