"""`up` fetches what it needs: the DGX Spark plan's hub model is not on disk, and `up` pulls it (told to,
or asked and told yes), refuses (asked and told no), or says in one line how to fetch it (nobody to
ask). The hub is a stand-in on 127.0.0.1; the engine is the recording fake, the pull is real."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app.commands import server_lifecycle as serving
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.core.plan import Plan, with_model
from orchestrator.errors import UsageError
from orchestrator.models.local import describe, resolve_model
from tests.fakes import FakeEngine, Notes, executors
from tests.planning import fixed_plan
from tests.standin_hub import Faults, StandInHub, serve
from tests.tiny_gguf import write_step35_metadata

STEP = KNOWN_MODELS["step-3.5-flash"]
NO_HOOKS: dict[str, bool | None] = {}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    first = write_step35_metadata(tmp_path_factory.mktemp("hub") / "step3p5_flash_Q4_K_S.gguf")
    return {first.name: first.read_bytes()}


@pytest.fixture
def hub(published: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInHub]:
    assert STEP.repo is not None
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with serve(StandInHub(STEP.repo, dict(published))) as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        yield stand_in


def spark_plan(tmp_path: Path) -> Plan:
    """DGX Spark's plan on a machine where the model has not been fetched yet."""
    models = tmp_path / "models"
    plan = fixed_plan("dgx-spark", "default", {"data_dir": tmp_path / "data", "models_dir": models})
    missing = describe(resolve_model(None, STEP.name, models), tmp_path / "gguf.json")
    assert not missing.present
    return with_model(plan, missing)


def up(plan: Plan, engine: FakeEngine, notes: Notes, pull: bool | None) -> serving.Served:
    return serving.up(
        plan, executors(engine), notes.reporter(), rebuild=False, force=False, decisions=NO_HOOKS, pull=pull
    )


def test_up_with_pull_fetches_the_model_then_serves_it(hub: StandInHub, tmp_path: Path) -> None:
    engine = FakeEngine()
    served = up(spark_plan(tmp_path), engine, Notes(), pull=True)
    assert served.plan.model.present and served.plan.model.path.name == "step3p5_flash_Q4_K_S.gguf"
    assert served.plan.model.arch_source == "GGUF metadata of step3p5_flash_Q4_K_S.gguf"
    assert "compose_up" in engine.names()
    assert [p for m, p, _r in hub.requests if m == "GET" and "/resolve/" in p]


def test_asked_and_told_yes_it_pulls(hub: StandInHub, tmp_path: Path) -> None:
    notes = Notes(answers=True)
    served = up(spark_plan(tmp_path), FakeEngine(), notes, pull=None)
    assert served.plan.model.present
    (question,) = notes.questions
    assert f"pull {STEP.repo}" in question and "GiB free at" in question


def test_asked_and_told_no_nothing_is_fetched(hub: StandInHub, tmp_path: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(UsageError, match="nothing was fetched"):
        up(spark_plan(tmp_path), engine, Notes(answers=False), pull=None)
    assert not [p for m, p, _r in hub.requests if m == "GET" and "/resolve/" in p]
    assert not list((tmp_path / "models").rglob("*.gguf*"))
    assert "build" not in engine.names()


def test_with_nobody_to_ask_it_says_how_in_one_line(hub: StandInHub, tmp_path: Path) -> None:
    with pytest.raises(
        UsageError,
        match=r"is missing; fetch it with 'orchestrator model pull' \(or 'orchestrator up --pull'\)",
    ):
        up(spark_plan(tmp_path), FakeEngine(), Notes(answers=None), pull=None)
    assert not hub.requests


def test_no_pull_never_asks(hub: StandInHub, tmp_path: Path) -> None:
    notes = Notes(answers=True)
    with pytest.raises(UsageError, match="is missing"):
        up(spark_plan(tmp_path), FakeEngine(), notes, pull=False)
    assert not notes.questions and not hub.requests


def test_an_interrupted_pull_inside_up_keeps_its_part(
    published: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real CLI: `up --target dgx-spark --pull`, stopped by Ctrl-C while the model downloads."""
    assert STEP.repo is not None
    name = next(iter(published))
    faults = Faults(stalls={name: 64 << 10})
    models = tmp_path / "models"
    part = models / STEP.repo / (name + ".part")
    with serve(StandInHub(STEP.repo, dict(published), faults=faults)) as stand_in:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(Path.home()),
            "HF_ENDPOINT": stand_in.url,
            "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
            "ORCHESTRATOR_MODELS_DIR": str(models),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        upping = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "up",
                "--target",
                "dgx-spark",
                "--pull",
                "--port",
                "18471",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not (part.is_file() and stand_in.ranges(name)):
            assert upping.poll() is None, upping.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        upping.send_signal(signal.SIGINT)
        _out, err = upping.communicate(timeout=60)
        faults.release.set()
    assert upping.returncode == 130, err
    assert part.is_file() and not (models / STEP.repo / name).exists()
    assert published[name].startswith(part.read_bytes())
