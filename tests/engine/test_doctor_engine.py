"""`doctor` against this machine's real Docker engine, and against one that is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration import cli_env, needs_docker, run_cli

pytestmark = [needs_docker]


@pytest.mark.docker
def test_doctor_against_this_machines_engine(tmp_path: Path) -> None:
    done = run_cli("doctor", "--target", "cpu", "--json", env=cli_env(), timeout=120)
    report = json.loads(done.stdout)
    found = {c["name"]: c for c in report["checks"]}
    assert found["docker engine"]["status"] in {"pass", "warn"}
    assert found["docker buildx"]["status"] == "pass" and found["docker compose"]["status"] == "pass"
    assert done.returncode == (1 if any(c["status"] == "fail" for c in found.values()) else 0)
    broken = run_cli(
        "doctor",
        "--target",
        "cpu",
        "--json",
        env=cli_env(DOCKER_HOST="unix:///nonexistent.sock"),
        timeout=120,
    )
    assert broken.returncode == 1
    assert {c["name"]: c for c in json.loads(broken.stdout)["checks"]}["docker engine"]["status"] == "fail"
