"""Errors the CLI turns into one line and an exit code; anything else is a bug and keeps its traceback.

Each exit code means one thing (docs/reference/exit-codes.md lists them):"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # An operation failed (a build, compose, a run, a push; doctor found a failing check): the message says which.
    FAILED = 1
    # Bad input: unknown names, malformed config, conflicting options, a missing file or folder.
    USAGE = 2
    # A model file that is missing parts, truncated, damaged or not what it claims to be.
    INVALID_MODEL = 3
    # The plan needs more memory than the machine can give.
    WONT_FIT = 4
    # `status`: the server is not running.
    NOT_RUNNING = 5
    # llama.cpp loaded the model (wholly or partly) on the CPU where the target needs its GPU.
    WRONG_DEVICE = 6
    # Interrupted by Ctrl-C (SIGINT) or SIGTERM.
    INTERRUPTED = 130
    TERMINATED = 143


class OrchestratorError(Exception):
    """A failure the user can act on. The message is one line that says what to do."""

    exit_code = ExitCode.FAILED
    # The end of a log that shows why (a server that never got ready), printed above the message.
    log_tail: str | None = None


class UsageError(OrchestratorError):
    """Bad input: unknown names, malformed config, conflicting options."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """orchestrator.yaml or ORCHESTRATOR_* variables are malformed or name unknown keys."""


class InvalidModel(OrchestratorError):
    """A model file that is missing, truncated, damaged, incomplete or not what it claims to be."""

    exit_code = ExitCode.INVALID_MODEL


class WontFit(OrchestratorError):
    """The plan needs more memory than the machine can give; the message names the fix."""

    exit_code = ExitCode.WONT_FIT


class WrongDevice(OrchestratorError):
    """The model landed on the CPU (wholly or partly) where the target needs its GPU; the message says what
    llama.cpp reported and the fix for that target."""

    exit_code = ExitCode.WRONG_DEVICE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it unwinds like Ctrl-C (exit 143)."""
