"""Deployments on disk: one JSON line each in `<data dir>/deployments/<project>.jsonl`, appended whole."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.core.deployments import Deployment
from orchestrator.errors import ConfigError


def history_file(data_dir: Path, project: str) -> Path:
    return data_dir / "deployments" / f"{project}.jsonl"


def read_history(data_dir: Path, project: str) -> list[Deployment]:
    """The deployments recorded, in order. A line that is not JSON (cut short by a crash, NULs after a
    power loss, a blank line) is no deployment and is passed over (`history` names them); a JSON line of
    the wrong shape is one line that names it."""
    path = history_file(data_dir, project)
    found = []
    for number, data in _json_lines(path):
        try:
            found.append(Deployment.from_dict(data))
        except TypeError as exc:
            raise ConfigError(_unreadable(path, number, str(exc))) from None
    return found


def passed_over(data_dir: Path, project: str) -> list[int]:
    """The numbers of the history's lines that are not JSON and were passed over (blank ones aside)."""
    path = history_file(data_dir, project)
    if not path.is_file():
        return []
    parsed = {number for number, _data in _json_lines(path)}
    lines = path.read_text(errors="replace").splitlines()
    return [n for n, line in enumerate(lines, 1) if n not in parsed and line.strip("\x00 \t")]


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    if not path.is_file():
        return []
    parsed = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            parsed.append((number, json.loads(line)))
        except ValueError:
            continue
    return parsed


def _unreadable(path: Path, number: int, why: str) -> str:
    return (
        f"{path} line {number} is not a deployment ({why}); fix or delete that line (the file is the "
        "history of this project's servers; the servers themselves are untouched)"
    )


def record(data_dir: Path, deployment: Deployment) -> None:
    """Appended as one line, flushed to the disk; a last line a crash cut short is ended first, so it
    stays one bad line (skipped on reading) and never swallows this one."""
    path = history_file(data_dir, deployment.project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as out:
        out.seek(0, os.SEEK_END)
        cut = False
        if out.tell():
            out.seek(-1, os.SEEK_END)
            cut = out.read(1) != b"\n"
        out.write(
            (b"\n" if cut else b"") + (json.dumps(deployment.to_dict(), sort_keys=True) + "\n").encode()
        )
        out.flush()
        os.fsync(out.fileno())
