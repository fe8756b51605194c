"""Deployments on disk: one JSON line each in `<data dir>/deployments/<project>.jsonl`, appended whole."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.core.deployments import Deployment
from orchestrator.errors import ConfigError


def history_file(data_dir: Path, project: str) -> Path:
    return data_dir / "deployments" / f"{project}.jsonl"


def read_history(data_dir: Path, project: str) -> list[Deployment]:
    path = history_file(data_dir, project)
    if not path.is_file():
        return []
    found = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            data = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue  # the last line, cut short by a crash, is not a deployment
            raise ConfigError(_unreadable(path, number, "is not JSON")) from None
        try:
            found.append(Deployment.from_dict(data))
        except TypeError as exc:
            raise ConfigError(_unreadable(path, number, str(exc))) from None
    return found


def _unreadable(path: Path, number: int, why: str) -> str:
    return (
        f"{path} line {number} is not a deployment ({why}); fix or delete that line (the file is the "
        "history of this project's servers; the servers themselves are untouched)"
    )


def record(data_dir: Path, deployment: Deployment) -> None:
    path = history_file(data_dir, deployment.project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(deployment.to_dict(), sort_keys=True) + "\n")
