"""Files the orchestrator writes for itself: replaced whole (never half-written), and small JSON caches
keyed by a file's identity (path, size, mtime) that are simply rebuilt when unreadable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_private(path: Path, data: bytes) -> None:
    """Written whole, readable by its owner alone (mode 0600), in a folder only the owner opens."""
    _private_folder(path.parent)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def write_for_container(path: Path, data: bytes) -> None:
    """A secret a container's own user reads (the API key, the TLS key): that user is not the owner, so
    the file lets others read (Docker mounts the file itself), inside a folder only the owner opens."""
    _private_folder(path.parent)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.chmod(0o644)
    os.replace(partial, path)


def _private_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def file_key(path: Path) -> str:
    """What identifies a file's content cheaply: a changed file gets a new key."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1))


def writable_folder(path: Path, what: str) -> Path:
    """path as a folder we can write in (made when missing), or one line that says why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot make {what} {path} ({exc.strerror}); give a folder you can write in"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {what} {path}; give a folder you can write in")
    return path


def readable_folder(path: Path, what: str) -> Path:
    """path when it is a folder or not there yet (nothing in it), or one line that says why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; give a folder")
    return path
