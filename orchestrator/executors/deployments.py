"""Deployments on disk: one JSON line each in `<data dir>/deployments/<project>.jsonl`, appended whole."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.core.deployments import Deployment


def history_file(data_dir: Path, project: str) -> Path:
    return data_dir / "deployments" / f"{project}.jsonl"


def read_history(data_dir: Path, project: str) -> list[Deployment]:
    path = history_file(data_dir, project)
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(Deployment.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a crash is not a deployment
    return found


def record(data_dir: Path, deployment: Deployment) -> None:
    path = history_file(data_dir, deployment.project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(deployment.to_dict(), sort_keys=True) + "\n")
