"""A benchmark's private server (app.steps.serving.private_server), through the recording fakes: started,
ready and its devices checked before the run; stopped however the run ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.app.steps.serving import ServeFailed, private_server
from orchestrator.errors import OrchestratorError
from tests.fakes import FakeEngine, FakeHost, Notes, cpu_plan, executors


def test_a_private_server_is_ready_and_checked_in_the_run_and_stopped_after(
    tmp_path: Path, model: Path
) -> None:
    engine, notes = FakeEngine(), Notes()
    plan = cpu_plan(tmp_path, model)
    runtime = executors(engine, FakeHost()).runtime(plan)
    with private_server(plan, runtime, notes.reporter(), allow_cpu=False) as placement:
        assert engine.names().count("compose_up") == 1 and "compose_down" not in engine.names()
        assert runtime.state(plan).running
    assert placement.describe() and any(line.startswith("devices:") for line in notes.lines)
    assert engine.names().count("compose_down") == 1


def test_a_private_server_is_stopped_when_the_run_fails(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine()
    plan = cpu_plan(tmp_path, model)
    runtime = executors(engine, FakeHost()).runtime(plan)
    with (
        pytest.raises(OrchestratorError, match="the run failed"),
        private_server(plan, runtime, Notes().reporter(), allow_cpu=False),
    ):
        raise OrchestratorError("the run failed")
    assert engine.names().count("compose_down") == 1


def test_a_private_server_that_never_gets_ready_is_stopped_and_the_run_never_starts(
    tmp_path: Path, model: Path
) -> None:
    engine = FakeEngine(state_after_up="exited")
    plan = cpu_plan(tmp_path, model)
    runtime = executors(engine, FakeHost()).runtime(plan)
    ran = []
    with (
        pytest.raises(ServeFailed, match="did not become ready"),
        private_server(plan, runtime, Notes().reporter(), allow_cpu=False),
    ):
        ran.append(True)
    assert not ran and engine.names().count("compose_down") == 1
