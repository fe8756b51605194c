"""One writer at a time: a command that changes what a folder holds takes that folder's lock first.

The lock is an OS file lock (filelock: flock on Linux and macOS), so a process that dies, however it
dies, holds nothing; beside it a small JSON file says who holds it, for the one line a second command
prints while it waits (or, with --no-wait, instead of waiting)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from orchestrator.errors import OrchestratorError

LOCK_FILE = ".orchestrator.lock"
HOLDER_FILE = ".orchestrator.lock.json"


class Busy(OrchestratorError):
    """Another command holds the lock and we were told not to wait."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} ({self.command}), since {started}"


def holder(folder: Path) -> Holder | None:
    try:
        data = json.loads((folder / HOLDER_FILE).read_text())
        return Holder(int(data["pid"]), str(data["command"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _command() -> str:
    return "orchestrator " + " ".join(sys.argv[1:3]) if sys.argv[1:] else "orchestrator"


@contextmanager
def exclusive(
    folder: Path, *, wait: bool, on_wait: Callable[[str], None], what: str = "this data directory"
) -> Iterator[None]:
    """Hold folder's lock for the block; wait for it (saying who holds it) or, without wait, refuse."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrchestratorError(f"cannot use {folder} ({exc.strerror}); choose a writable folder") from None
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        current = holder(folder)
        who = current.describe() if current else "another orchestrator command"
        if not wait:
            raise Busy(
                f"{what} ({folder}) is in use by {who}; try again when it ends, or drop --no-wait"
            ) from None
        on_wait(f"waiting for {who}, which is changing {what} ({folder})")
        lock.acquire()
    except OSError as exc:
        raise OrchestratorError(f"cannot lock {folder} ({exc.strerror}); choose a writable folder") from None
    try:
        (folder / HOLDER_FILE).write_text(
            json.dumps({"pid": os.getpid(), "command": _command(), "since": time.time()})
        )
        yield
    finally:
        (folder / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
