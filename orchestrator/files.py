"""Files the orchestrator writes for itself: replaced whole (never half-written), and small JSON caches
keyed by a file's identity (path, size, mtime) that are simply rebuilt when unreadable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


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
