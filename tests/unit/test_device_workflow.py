"""The device check in the workflow, through the recording fakes and the real logs of tests/fixtures/devices:
a GPU target whose server put the model on the CPU (here: Mesa's lavapipe) is refused with its fix and
stopped, or given back the server that ran before; --allow-cpu goes on; status, bench and run carry it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.app.commands import run
from orchestrator.app.commands import server_lifecycle as serving
from orchestrator.app.commands.bench import batched
from orchestrator.app.results import read_records
from orchestrator.core.plan import Plan
from orchestrator.errors import ExitCode, WrongDevice
from tests.fakes import FakeEngine, FakeHost, Notes, executors, target_plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "devices"
LAVAPIPE = (FIXTURES / "vulkan-lavapipe-server.log").read_text().splitlines()
RADEON = [
    line.replace("llvmpipe (LLVM 19.1.7, 256 bits)", "AMD Radeon 8060S Graphics (RADV GFX1151)")
    for line in LAVAPIPE
]
CPU = (FIXTURES / "cpu-server-ngl99.log").read_text().splitlines()


def _up(plan: Plan, engine: FakeEngine, notes: Notes | None = None, **options: bool) -> serving.Served:
    return serving.up(
        plan,
        executors(engine, FakeHost()),
        (notes or Notes()).reporter(),
        rebuild=False,
        force=False,
        decisions={},
        **options,
    )


def test_a_gpu_target_served_from_a_software_rasteriser_is_refused_and_stopped(
    tmp_path: Path, model: Path
) -> None:
    engine = FakeEngine(logs_after_up=[LAVAPIPE])
    with pytest.raises(WrongDevice) as refused:
        _up(target_plan("ryzen-ai-max", tmp_path, model), engine)
    message = str(refused.value)
    assert refused.value.exit_code == ExitCode.WRONG_DEVICE
    assert int(refused.value.exit_code) == 6
    assert message.startswith("the model was loaded on the CPU: the only Vulkan device is Vulkan0 (llvmpipe")
    assert "/dev/dri" in message and "render and video group ids" in message
    assert message.endswith("the server is stopped")
    assert engine.names()[-1] == "compose_down"


def test_allow_cpu_serves_with_a_warning(tmp_path: Path, model: Path) -> None:
    engine, notes = FakeEngine(logs_after_up=[LAVAPIPE]), Notes()
    served = _up(target_plan("ryzen-ai-max", tmp_path, model), engine, notes, allow_cpu=True)
    assert "compose_down" not in engine.names()
    assert served.placement.device("Vulkan0") is not None
    assert any(
        n.startswith("warning: the model was loaded on the CPU") and "--allow-cpu" in n for n in notes.lines
    )


def test_a_real_gpu_passes_and_is_shown(tmp_path: Path, model: Path) -> None:
    engine, notes = FakeEngine(logs_after_up=[RADEON]), Notes()
    served = _up(target_plan("ryzen-ai-max", tmp_path, model), engine, notes)
    assert (
        "Vulkan0 (AMD Radeon 8060S Graphics (RADV GFX1151)): model 92 MiB, KV 45 MiB"
        in served.placement.describe()
    )
    assert any(n.startswith("devices: Vulkan0 (AMD Radeon") for n in notes.lines)


def test_a_refused_new_server_gives_the_previous_one_back(tmp_path: Path, model: Path) -> None:
    engine, notes = FakeEngine(logs_after_up=[RADEON, LAVAPIPE, RADEON]), Notes()
    _up(target_plan("ryzen-ai-max", tmp_path, model), engine)
    with pytest.raises(WrongDevice) as refused:
        _up(target_plan("ryzen-ai-max", tmp_path, model, port=8090), engine, notes)
    assert str(refused.value).endswith("the previous server is serving again at http://127.0.0.1:8080")
    assert engine.names().count("compose_up") == 3
    assert any("starting the one that served before" in n for n in notes.lines)


def test_the_cpu_target_takes_the_cpu(tmp_path: Path, model: Path) -> None:
    served = _up(target_plan("cpu", tmp_path, model), FakeEngine(logs_after_up=[CPU]))
    assert [d.name for d in served.placement.devices] == ["CPU"]


def test_status_shows_each_device_and_the_problem(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(logs_after_up=[LAVAPIPE])
    plan = target_plan("ryzen-ai-max", tmp_path, model)
    _up(plan, engine, allow_cpu=True)
    status = serving.status(plan, executors(engine, FakeHost()))
    data = status.to_dict()
    (vulkan,) = [d for d in data["devices"]["devices"] if d["name"] == "Vulkan0"]
    assert vulkan["description"] == "llvmpipe (LLVM 19.1.7, 256 bits)"
    assert vulkan["model_mib"] == 92.1 and vulkan["kv_mib"] == 45.0
    assert data["devices"]["offloaded"] == [31, 31]
    assert data["device_problem"].startswith("the model was loaded on the CPU")
    rows = dict(serving.device_rows(status.placement))
    assert rows["device Vulkan0"].startswith("llvmpipe (LLVM 19.1.7, 256 bits): model 92 MiB, KV 45 MiB")


def test_a_bench_on_the_cpu_is_recorded_then_refused(tmp_path: Path, model: Path) -> None:
    one = target_plan("ryzen-ai-max", tmp_path, model)
    plan = replace(one, benches=one.benches * 2)
    engine = FakeEngine(outputs=[LAVAPIPE, LAVAPIPE, LAVAPIPE, LAVAPIPE])
    results = tmp_path / "results"
    with pytest.raises(WrongDevice):
        batched.bench(
            plan, executors(engine), Notes().reporter(), results=results, on_row=lambda *_: None, decisions={}
        )
    (record,) = read_records(results)
    assert record.runtime["devices"]["devices"][0]["name"] == "Vulkan0"
    assert record.runtime["device_problem"].startswith("the model was loaded on the CPU")
    # Refused after the first set (run twice: its rows never came): the profile's other sets never ran.
    assert engine.names().count("stream") == 2


def test_run_hides_the_load_log_and_checks_it(tmp_path: Path, model: Path) -> None:
    plan = target_plan("ryzen-ai-max", tmp_path, model)
    engine = FakeEngine(outputs=[[*LAVAPIPE, "The capital of France is Paris."]])
    shown = []
    with pytest.raises(WrongDevice):
        for line in run.run_prompt(plan, executors(engine), Notes().reporter()):
            shown.append(line)
    assert "The capital of France is Paris." in shown
    assert not any("load_tensors" in line for line in shown)


def test_status_recalls_the_devices_once_the_log_has_rotated(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(logs_after_up=[RADEON])
    plan = target_plan("ryzen-ai-max", tmp_path, model)
    _up(plan, engine)
    engine.service_log = ["0.99.000.000 I srv  log_server_r: request: POST /v1/chat/completions 200"]
    status = serving.status(plan, executors(engine, FakeHost()))
    vulkan = status.placement.device("Vulkan0")
    assert vulkan is not None and vulkan.description.startswith("AMD Radeon")
    assert status.device_problem is None
