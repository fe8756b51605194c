"""The benchmarks that need no engine, run in their smoke mode: each still works end to end (its figures
are not judged here). The ones that need the engine: tests/engine/test_benchmarks.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration import cli_env

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_cli_startup_runs_in_its_smoke_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cli_startup.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("python -c pass: ")
    assert [line.split(":")[0] for line in lines[1:]] == [
        "orchestrator --help",
        "orchestrator targets --json",
        "orchestrator plan --target cpu --json",
    ]


def test_cli_startup_fails_when_a_command_it_times_fails() -> None:
    """A failing command is no figure: the benchmark stops in one line instead of timing its error."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cli_startup.py"), "--smoke"],
        capture_output=True,
        text=True,
        # A profile the plan refuses: `plan` fails where --help does not.
        env={**cli_env(), "ORCHESTRATOR_PROFILE": "no-such-profile"},
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "plan --target cpu --json: exit 2" in done.stderr
