"""The workflow's decisions and fallbacks, driven through recording fakes of the engine and the host: no
Docker, no network, milliseconds each. The same steps against the real engine are in tests/engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.app.commands import run
from orchestrator.app.commands import server_lifecycle as serving
from orchestrator.app.commands.bench import batched
from orchestrator.app.commands.bench import serve_bench as serving_bench
from orchestrator.app.steps import building, probing
from orchestrator.app.steps.serving import ServeFailed
from orchestrator.core.bench import BenchRecord
from orchestrator.core.plan import Plan, with_model, with_source
from orchestrator.core.plan.image import local_base_images
from orchestrator.core.speculation import Speculative
from orchestrator.errors import OrchestratorError, UsageError, WontFit
from tests.fakes import FakeEngine, FakeHost, Notes, bench_serve_on_fakes, cpu_plan, executors
from tests.planning import fixed_plan

NO_HOOKS: dict[str, bool | None] = {}


def bench(plan: Plan, engine: FakeEngine, notes: Notes | None = None, **options: bool) -> list[BenchRecord]:
    return batched.bench(
        plan,
        executors(engine),
        (notes or Notes()).reporter(),
        results=plan.data_dir / "results",
        on_row=lambda *_: None,
        decisions=NO_HOOKS,
        **options,
    )


def test_a_built_image_is_not_built_again(tmp_path: Path) -> None:
    engine = FakeEngine()
    ex = executors(engine)
    plan = cpu_plan(tmp_path)
    first = building.build(plan, ex, Notes().reporter(), rebuild=False)
    again = building.build(plan, ex, Notes().reporter(), rebuild=False)
    assert first.outcome.built and not again.outcome.built
    assert engine.names().count("build") == 1
    # What the build found about the web page is a label once the build ran; the image is built under a
    # tag of its own and takes the plan's only then.
    assert (
        "promote",
        {"io.step-flash.webui": "none", "io.step-flash.rpc-protocol": "7.0.0"},
    ) in engine.calls
    assert set(engine.images) >= {plan.build.tag} and not any(t.endswith("-staged") for t in engine.images)  # type: ignore[union-attr]
    assert first.outcome.webui is not None and first.outcome.webui.startswith("none:")
    # Every build stages its own context and leaves none behind.
    assert not list((tmp_path / "contexts").glob("*"))


def test_unreachable_git_builds_the_same_commit_from_the_mirror(tmp_path: Path) -> None:
    engine, host, notes = FakeEngine(), FakeHost(reachable=False), Notes()
    plan = cpu_plan(tmp_path)
    built = building.build(plan, executors(engine, host), notes.reporter(), rebuild=False)
    assert ("mirror", "upstream") in host.calls
    assert built.plan.source.kind == "local" and built.plan.source.revision == plan.source.commit
    (args,) = [a for name, a in engine.calls if name == "build"]
    assert args["LLAMA_SOURCE_KIND"] == "local"
    # The same commit from elsewhere is the same image.
    assert built.plan.build.tag == plan.build.tag  # type: ignore[union-attr]
    assert any("taking the same commit from the llama-cpp-python 0.3.36 sdist" in n for n in notes.lines)


def test_reachable_git_is_built_from_git(tmp_path: Path) -> None:
    engine, host = FakeEngine(), FakeHost(reachable=True)
    built = building.build(cpu_plan(tmp_path), executors(engine, host), Notes().reporter(), rebuild=False)
    assert "mirror" not in [name for name, _ in host.calls]
    (args,) = [a for name, a in engine.calls if name == "build"]
    assert args["LLAMA_SOURCE_KIND"] == "git" and built.plan.source.kind == "git"


def test_bases_that_cannot_be_pulled_are_made_here(tmp_path: Path) -> None:
    plan = cpu_plan(tmp_path)
    engine = FakeEngine(unpullable={plan.build.build_args["BUILD_BASE"]})  # type: ignore[union-attr]
    notes = Notes()
    built = building.build(plan, executors(engine), notes.reporter(), rebuild=False)
    assert [a for name, a in engine.calls if name == "make_base"] == list(
        local_base_images("vulkan", "linux/amd64")
    )
    builds = [a["BUILD_BASE"] for name, a in engine.calls if name == "build"]
    assert builds == [plan.build.build_args["BUILD_BASE"], "step-flash-base:vulkan-build"]  # type: ignore[union-attr]
    assert built.plan.origin("bases").startswith("fallback")
    assert any("making local ones with debootstrap" in n for n in notes.lines)


def test_a_cross_compiled_image_makes_this_machines_build_base(tmp_path: Path) -> None:
    # The cpu image for arm64, planned on amd64: compiled here, only its runtime base is arm64's.
    plan = cpu_plan(tmp_path, platform="linux/arm64")
    engine = FakeEngine(unpullable={plan.build.build_args["BUILD_BASE"]})  # type: ignore[union-attr]
    built = building.build(plan, executors(engine), Notes().reporter(), rebuild=False)
    assert [a for name, a in engine.calls if name == "make_base"] == [
        "step-flash-base:vulkan-build",
        "step-flash-base:vulkan-runtime-arm64",
    ]
    args = built.plan.build.build_args  # type: ignore[union-attr]
    assert (args["BUILD_BASE"], args["RUNTIME_BASE"]) == (
        "step-flash-base:vulkan-build",
        "step-flash-base:vulkan-runtime-arm64",
    )


def test_bases_chosen_by_the_user_are_obeyed_and_fail(tmp_path: Path) -> None:
    plan = cpu_plan(tmp_path, bases="upstream")
    engine = FakeEngine(unpullable={plan.build.build_args["BUILD_BASE"]})  # type: ignore[union-attr]
    with pytest.raises(OrchestratorError, match=r"stage 'toolchain'"):
        building.build(plan, executors(engine), Notes().reporter(), rebuild=False)
    assert "make_base" not in engine.names()


def test_without_root_the_bases_fallback_says_how(tmp_path: Path) -> None:
    plan = cpu_plan(tmp_path)
    engine = FakeEngine(unpullable={plan.build.build_args["BUILD_BASE"]})  # type: ignore[union-attr]
    with pytest.raises(OrchestratorError, match="sudo orchestrator bases bootstrap --family vulkan"):
        building.build(plan, executors(engine, FakeHost(bootstrap=False)), Notes().reporter(), rebuild=False)


def test_up_builds_writes_compose_and_waits(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost()
    served = serving.up(
        cpu_plan(tmp_path, model),
        executors(engine, host),
        Notes().reporter(),
        rebuild=False,
        force=False,
        decisions=NO_HOOKS,
    )
    assert engine.names().index("build") < engine.names().index("compose_up")
    compose = Path(served.location)
    assert compose.is_file() and "llama-server" in compose.read_text()
    assert ("run_steps", ()) in host.calls


def test_a_server_that_dies_while_loading_is_an_error_with_its_log(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(state_after_up="exited", service_log=["load_tensors: out of memory"])
    with pytest.raises(ServeFailed) as failed:
        serving.up(
            cpu_plan(tmp_path, model),
            executors(engine),
            Notes().reporter(),
            rebuild=False,
            force=False,
            decisions=NO_HOOKS,
        )
    assert "exited (exit code 1" in str(failed.value)
    assert "out of memory" in failed.value.log_tail


def test_a_port_in_use_stops_up_before_any_build(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(UsageError, match=r"port 8080 on 127\.0\.0\.1 is already in use"):
        serving.up(
            cpu_plan(tmp_path, model),
            executors(engine, FakeHost(ports_in_use={8080})),
            Notes().reporter(),
            rebuild=False,
            force=False,
            decisions=NO_HOOKS,
        )
    assert "build" not in engine.names() and "compose_up" not in engine.names()


def _row(pp: int) -> str:
    row = {"pp": pp, "tg": 32, "pl": 1, "n_kv": pp + 32, "t_pp": 0.1, "speed_pp": 100.0}
    return json.dumps(row | {"t_tg": 0.5, "speed_tg": 64.0, "t": 0.6, "speed": 60.0})


def test_a_bench_run_that_lost_rows_is_run_again_once(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(outputs=[[_row(0), _row(128)], [_row(0), _row(128), _row(512)]])
    notes = Notes()
    records = bench(cpu_plan(tmp_path, model), engine, notes)
    assert engine.names().count("stream") == 2
    (record,) = records
    assert record.complete and [r.pp for r in record.rows] == [0, 128, 512]
    assert any("rows [(512, 32, 1)] never arrived; running it again once" in n for n in notes.lines)
    assert len((tmp_path / "results" / "bench.jsonl").read_text().splitlines()) == 1


def test_a_bench_run_short_twice_is_recorded_incomplete(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(outputs=[[_row(0)], [_row(0), _row(128)]])
    (record,) = bench(cpu_plan(tmp_path, model), engine)
    assert not record.complete and record.missing == [(512, 32, 1)]


def test_a_bench_process_that_fails_is_not_run_again(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(outputs=[["error: failed to load model"]], fail_run_with=1)
    (record,) = bench(cpu_plan(tmp_path, model), engine)
    assert engine.names().count("stream") == 1
    assert record.error is not None and "failed to load model" in record.error


def test_status_and_down_ask_the_runtime_the_plan_chose(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine()
    ex = executors(engine)
    plan = cpu_plan(tmp_path, model)
    assert serving.status(plan, ex).to_dict()["state"] == "not created"
    serving.up(plan, ex, Notes().reporter(), rebuild=False, force=False, decisions=NO_HOOKS)
    status = serving.status(plan, ex)
    assert status.running and status.runtime == "container" and status.tokens_per_second == {"predicted": 1.0}
    assert serving.down(plan, ex).was_running
    assert "compose_down" in engine.names()


def _spark_plan(tmp_path: Path) -> Plan:
    """DGX Spark's default plan (Step-3.5-Flash as published, ~104 GiB of weights) with a stand-in file
    for the model's bytes, so that its memory rows are the real ones."""
    plan = fixed_plan("dgx-spark", "default", {"data_dir": tmp_path})
    stand_in = tmp_path / "models" / "step3.5_flash_Q4_K_S.gguf"
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_bytes(b"GGUF stand-in")
    return with_model(plan, replace(plan.model, path=stand_in))


def _spark_rows() -> list[str]:
    return [
        json.dumps(
            {"pp": pp, "tg": 128, "pl": 1, "n_kv": pp + 128, "t_pp": 1.0, "speed_pp": 400.0}
            | {"t_tg": 6.0, "speed_tg": 20.0, "t": 7.0, "speed": 300.0}
        )
        for pp in (0, 2048, 8192, 16384)
    ]


def _running(engine: FakeEngine, plan: Plan) -> None:
    serving.up(plan, executors(engine), Notes().reporter(), rebuild=False, force=False, decisions=NO_HOOKS)
    assert engine.service_state is not None and engine.service_state.state == "running"


def test_bench_beside_a_running_server_that_would_not_fit_is_refused(tmp_path: Path) -> None:
    engine = FakeEngine()
    plan = _spark_plan(tmp_path)
    _running(engine, plan)
    with pytest.raises(WontFit, match=r"beside the running server's 10\d\.\d GiB.*--stop-server"):
        bench(plan, engine)
    assert "stream" not in engine.names()


def test_run_beside_a_running_server_that_would_not_fit_is_refused(tmp_path: Path) -> None:
    engine = FakeEngine()
    plan = _spark_plan(tmp_path)
    _running(engine, plan)
    with pytest.raises(WontFit, match="run needs"):
        list(run.run_prompt(plan, executors(engine), Notes().reporter()))
    assert "stream" not in engine.names()


def test_stop_server_stops_it_for_the_run_and_starts_it_again(tmp_path: Path) -> None:
    engine = FakeEngine()
    plan = _spark_plan(tmp_path)
    _running(engine, plan)
    engine.outputs = [_spark_rows()]
    (record,) = bench(plan, engine, stop_server=True)
    assert record.complete
    after_up = engine.names()[engine.names().index("compose_up") + 1 :]
    assert after_up.index("compose_down") < after_up.index("stream") < after_up.index("compose_up")
    assert engine.service_state is not None and engine.service_state.state == "running"


def test_a_small_model_runs_beside_its_server(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(outputs=[[_row(0), _row(128), _row(512)]])
    plan = cpu_plan(tmp_path, model)
    _running(engine, plan)
    (record,) = bench(plan, engine)
    assert record.complete and "compose_down" not in engine.names()


def test_up_names_the_page_to_open_or_why_there_is_none(tmp_path: Path, model: Path) -> None:
    served = serving.up(
        cpu_plan(tmp_path, model),
        executors(FakeEngine(), FakeHost(page=200)),
        Notes().reporter(),
        rebuild=False,
        force=False,
        decisions=NO_HOOKS,
    )
    assert served.page == "http://127.0.0.1:8080/" and served.no_page is None
    without = serving.up(
        cpu_plan(tmp_path / "b", model),
        executors(FakeEngine(), FakeHost(page=404)),
        Notes().reporter(),
        rebuild=False,
        force=False,
        decisions=NO_HOOKS,
    )
    assert without.page is None and without.no_page is not None
    assert "built without llama-server's web UI; serve a built one with --ui DIR" in without.no_page


def test_a_ui_folder_is_mounted_read_only_and_served(tmp_path: Path) -> None:
    plan = cpu_plan(tmp_path, ui=str(tmp_path / "webui"))
    assert plan.container is not None and (str(tmp_path / "webui"), "/webui", "ro") in plan.container.volumes
    assert plan.server.argv[-2:] == ("--path", "/webui")
    assert cpu_plan(tmp_path, ui="off").server.argv[-1] == "--no-webui"
    assert "--path" not in cpu_plan(tmp_path).server.argv


def _serving(
    tmp_path: Path,
    model: Path,
    host: FakeHost,
    engine: FakeEngine,
    sweep: tuple[Speculative, ...] = (),
    **settings: object,
) -> serving_bench.ServingSweep:
    return bench_serve_on_fakes(tmp_path, model, host, engine, sweep=sweep, **settings)


def test_serving_bench_runs_speculation_off_then_on_beside_the_users_server(
    tmp_path: Path, model: Path
) -> None:
    engine, host = FakeEngine(), FakeHost()
    sweep = _serving(tmp_path, model, host, engine, speculative="ngram-mod")
    (comparison,) = sweep.comparisons
    # Two servers of its own, one after the other, on a free port under their own project; each stopped.
    ups = [args for name, args in engine.calls if name == "compose_up"]
    downs = [args for name, args in engine.calls if name == "compose_down"]
    assert [project for _file, project in ups] == ["step-flash-bench"] * 2 and len(downs) == 2
    assert all(url == "http://127.0.0.1:18080" for name, url in host.calls if name == "chat")
    # Per server: one warm-up request, then 3 prompts x (1 + 4) clients, at temperature 0; with speculation
    # off, one more per prompt asking the two likeliest tokens at each step (untimed).
    assert len(host.chats) == 2 * (1 + 3 * 5) + 3 and {c["temperature"] for c in host.chats} == {0}
    assert [c.get("top_logprobs") for c in host.chats].count(2) == 3
    assert comparison.off.margins["short-chat"] == [(4, 1.0), (9, 1.0)] and comparison.on.margins == {}
    one, four = comparison.rows
    assert (one.clients, four.clients) == (1, 4)
    assert one.ratio == pytest.approx(1.5) and one.acceptance == pytest.approx(0.75)
    assert one.identical == one.compared == 3 and comparison.divergent == []
    lines = (tmp_path / "results" / "bench.jsonl").read_text().splitlines()
    assert [json.loads(line)["speculation"] for line in lines] == ["off", "ngram-mod"]


@pytest.mark.parametrize(("margin", "fails"), [(0.05, False), (0.5, True)])
def test_a_text_that_parts_at_a_near_tie_is_not_a_failure(
    tmp_path: Path, model: Path, margin: float, fails: bool
) -> None:
    host = FakeHost(diverge=True, margin=margin)
    (comparison,) = _serving(tmp_path, model, host, FakeEngine(), speculative="ngram-mod").comparisons
    prompts = ["short-chat", "code-edit", "long-context"]
    assert comparison.divergent == (prompts if fails else [])
    assert [d.prompt for d in comparison.near_ties] == ([] if fails else prompts)
    assert all(d.at == 0 and d.margin == pytest.approx(margin) for d in comparison.near_ties)


def test_serving_bench_needs_something_to_compare(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(UsageError, match=r"pass --spec mtp .* or --spec ngram-mod"):
        _serving(tmp_path, model, FakeHost(), engine)
    # A model without MTP heads: the same refusal names why.
    with pytest.raises(UsageError, match="has no MTP heads"):
        _serving(tmp_path, model, FakeHost(), engine, speculative="mtp")
    assert "compose_up" not in engine.names()


def test_serving_bench_records_a_failed_request_and_stops_its_server(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost(chat_fails_after=3)
    sweep = _serving(tmp_path, model, host, engine, speculative="ngram-mod")
    assert sweep.off.error == "llama-server answered HTTP 500: boom"
    assert engine.names().count("compose_down") == 2


def _up(plan: Plan, engine: FakeEngine, host: FakeHost) -> serving.Served:
    return serving.up(
        plan, executors(engine, host), Notes().reporter(), rebuild=False, force=False, decisions=NO_HOOKS
    )


def test_a_head_checks_every_worker_before_it_starts(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine()
    plan = cpu_plan(tmp_path, model, rpc="127.0.0.1:50052,127.0.0.1:50053")
    # The second worker is not up: one line naming it and how to start it; the head never starts.
    host = FakeHost(workers={"127.0.0.1:50052": (7, 0, 0)})
    with pytest.raises(
        UsageError, match=r"RPC worker 127\.0\.0\.1:50053 does not answer \(Connection refused\); "
    ):
        _up(plan, engine, host)
    assert "compose_up" not in engine.names()
    # A worker on another build: both protocol versions and the head's image are named.
    host = FakeHost(workers={"127.0.0.1:50052": (7, 0, 0), "127.0.0.1:50053": (6, 1, 0)})
    with pytest.raises(
        UsageError, match=r"speaks RPC protocol 6\.1\.0 but the head's image .* speaks 7\.0\.0"
    ):
        _up(plan, engine, host)
    host = FakeHost(workers={"127.0.0.1:50052": (7, 0, 0), "127.0.0.1:50053": (7, 0, 0)})
    served = _up(plan, engine, host)
    compose = Path(served.location).read_text()
    assert (
        "--rpc" in compose
        and "127.0.0.1:50052,127.0.0.1:50053" in compose
        and "network_mode: host" in compose
    )
    status = serving.status(plan, executors(engine, FakeHost(workers={"127.0.0.1:50052": (7, 0, 0)})))
    assert status.workers == {"127.0.0.1:50052": True, "127.0.0.1:50053": False}
    assert status.to_dict()["speculation"] == "off"


def test_worker_up_runs_rpc_server_on_its_address_only(tmp_path: Path) -> None:
    from orchestrator.app.commands import workers
    from orchestrator.core.rpc import parse_listen

    engine, notes = FakeEngine(), Notes()
    host = FakeHost(workers={"127.0.0.1:50052": (7, 0, 0)})
    started = workers.worker_up(
        cpu_plan(tmp_path), parse_listen("127.0.0.1"), executors(engine, host), notes.reporter()
    )
    assert started.hello.version_text == "7.0.0" and not started.kept
    assert any(n.startswith("warning: rpc-server has no authentication") for n in notes.lines)
    compose = started.plan.compose_file.read_text()
    assert "- rpc-server\n    - -H\n    - 127.0.0.1\n    - -p\n    - '50052'\n    - -c" in compose
    assert "network_mode: host" in compose and "rpc-cache" in compose
    assert [args[1] for name, args in engine.calls if name == "compose_up"] == ["step-flash-worker"]
    assert workers.worker_down(cpu_plan(tmp_path), executors(engine, host)).was_running


def test_doctor_checks_each_worker_and_the_link_to_it(tmp_path: Path, model: Path) -> None:
    from orchestrator.core.doctor import diagnose

    engine = FakeEngine()
    plan = cpu_plan(tmp_path, model, rpc="192.168.100.2:50052,127.0.0.1:50053,127.0.0.1:50054")
    building.build(plan, executors(engine), Notes().reporter(), rebuild=False)
    host = FakeHost(workers={"192.168.100.2:50052": (7, 0, 0), "127.0.0.1:50053": (6, 0, 0)})
    checks = {c.name: c for c in diagnose(plan, probing.doctor_facts(plan, executors(engine, host)))}
    assert checks["rpc worker 192.168.100.2:50052"].status == "pass"
    slow = checks["rpc link 192.168.100.2:50052"]
    assert (
        slow.status == "warn"
        and "enp1s0f0np0: 1000 Mb/s, MTU 1500" in slow.detail
        and "QSFP" in (slow.fix or "")
    )
    other = checks["rpc worker 127.0.0.1:50053"]
    assert other.status == "fail" and "protocol 6.0.0, the head's image 7.0.0" in other.detail
    gone = checks["rpc worker 127.0.0.1:50054"]
    assert (
        gone.status == "fail"
        and gone.fix == "on that machine: orchestrator worker up --target cpu --listen 127.0.0.1:50054"
    )


@pytest.mark.parametrize("when", ["copying the source", "building"])
def test_a_build_interrupted_at_any_point_leaves_no_context_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from orchestrator.core.sources import Source
    from orchestrator.executors import images

    tree = tmp_path / "llama.cpp"
    for n in range(20):
        (tree / f"dir{n}").mkdir(parents=True)
        (tree / f"dir{n}" / "file.c").write_text("int x;\n")
    plan = cpu_plan(tmp_path / "data")
    plan = with_source(plan, Source(name="local", kind="local", path=tree, revision="0c1e570"))
    copied = 0

    def copy_then_interrupt(src: str, dst: str) -> None:
        nonlocal copied
        copied += 1
        if copied == 10:
            raise KeyboardInterrupt
        Path(dst).write_bytes(Path(src).read_bytes())

    engine = FakeEngine()
    if when == "copying the source":
        monkeypatch.setattr(images, "_link_or_copy", copy_then_interrupt)
    else:
        monkeypatch.setattr(engine, "build", lambda **_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        building.build(plan, executors(engine), Notes().reporter(), rebuild=False)
    assert when == "building" or copied == 10
    assert not list((tmp_path / "data" / "contexts").glob("*"))


def test_a_changed_plan_that_does_not_get_ready_gives_the_previous_server_back(
    tmp_path: Path, model: Path
) -> None:
    """Start this plan, or go back: the new server exits while loading, the old one is started again
    from its own compose file, and the error says both."""
    engine, notes = FakeEngine(states_after_up=["running", "exited", "running"]), Notes()
    first = _up(cpu_plan(tmp_path, model), engine, FakeHost())
    working = Path(first.location).read_text()
    with pytest.raises(ServeFailed) as failed:
        serving.up(
            cpu_plan(tmp_path, model, port=8090),
            executors(engine),
            notes.reporter(),
            rebuild=False,
            force=False,
            decisions=NO_HOOKS,
        )
    message = str(failed.value)
    assert "did not become ready: the container exited" in message
    assert message.endswith("the previous server is serving again at http://127.0.0.1:8080")
    assert Path(first.location).read_text() == working
    assert engine.names().count("compose_up") == 3
    assert any("starting the one that served before" in n for n in notes.lines)


def test_a_failing_first_server_has_nothing_to_go_back_to(tmp_path: Path, model: Path) -> None:
    engine = FakeEngine(states_after_up=["exited"])
    with pytest.raises(ServeFailed) as failed:
        _up(cpu_plan(tmp_path, model), engine, FakeHost())
    assert "previous server" not in str(failed.value)
    assert engine.names().count("compose_up") == 1


@pytest.mark.parametrize(
    ("change", "host", "says"),
    [
        ({"rpc": "127.0.0.1:9"}, FakeHost(), r"RPC worker 127\.0\.0\.1:9 does not answer"),
        ({"port": 8091}, FakeHost(ports_in_use={8091}), r"port 8091 on 127\.0\.0\.1 is already in use"),
    ],
)
def test_a_changed_plan_that_is_refused_leaves_the_running_server_as_it_was(
    tmp_path: Path, model: Path, change: dict[str, object], host: FakeHost, says: str
) -> None:
    engine = FakeEngine()
    first = _up(cpu_plan(tmp_path, model), engine, FakeHost())
    working = Path(first.location).read_text()
    calls = len(engine.calls)
    with pytest.raises(UsageError, match=says):
        _up(cpu_plan(tmp_path, model, **change), engine, host)
    assert Path(first.location).read_text() == working
    assert not {"compose_up", "compose_down", "build"} & set(engine.names()[calls:])


def test_the_servers_own_port_is_free_for_its_replacement(tmp_path: Path, model: Path) -> None:
    """Published on every address with a key, then back to loopback on the same port: the port is held
    by the very server being replaced, not by another program."""
    key = tmp_path / "key"
    key.write_text("secret\n")
    key.chmod(0o600)
    engine = FakeEngine()
    _up(cpu_plan(tmp_path, model, host="0.0.0.0", api_key_file=key), engine, FakeHost())
    served = _up(cpu_plan(tmp_path, model), engine, FakeHost(ports_in_use={8080}))
    assert "127.0.0.1:8080:8443" in Path(served.location).read_text()


def test_a_server_the_oom_killer_ends_is_reported_as_out_of_memory(tmp_path: Path, model: Path) -> None:
    """Not a plain restart: up and status say out of memory, with the plan's figures and its fixes."""
    engine = FakeEngine(state_after_up="restarting", oom_after_up=True)
    plan = cpu_plan(tmp_path, model, memory_limit="48m")
    # The plan says it will not fit, naming the limit first; --force tries anyway.
    with pytest.raises(WontFit, match="a higher memory_limit, or none"):
        _up(plan, engine, FakeHost())
    with pytest.raises(ServeFailed) as failed:
        serving.up(plan, executors(engine), Notes().reporter(), rebuild=False, force=True, decisions=NO_HOOKS)
    message = str(failed.value)
    assert "out of memory: the kernel's OOM killer ended llama-server (OOMKilled, exit 137)" in message
    assert "the memory plan puts the server at" in message and "-c 4096 -ub 512" in message
    assert "fixes: a higher memory_limit, or none" in message
    status = serving.status(plan, executors(engine)).to_dict()
    assert status["out_of_memory"] is not None and "OOMKilled" in status["out_of_memory"]


def test_the_macs_native_server_is_a_launchd_agent_written_from_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written with plistlib where launchd looks for a user's agents, loaded with launchctl bootstrap,
    its state read back from launchd; the same plan again is kept; down boots it out and removes it."""
    import os
    import plistlib

    from orchestrator.executors.runtime import runtime_for

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from orchestrator.executors import native, native_proxy

    # Homebrew's caddy, and the socket's folder (on the Mac, in its /tmp): recorded, not made here.
    monkeypatch.setattr(native_proxy, "caddy", lambda: "/opt/homebrew/bin/caddy")
    folders: list[str] = []
    monkeypatch.setattr(native, "socket_folder", lambda plan: folders.append(str(plan.socket)))
    plan = fixed_plan("mac-studio", "default", {"data_dir": tmp_path / "data"})
    host = FakeHost()
    runtime = runtime_for(plan, FakeEngine(), host)
    assert plan.supervisor.startswith("launchd: the per-user agents io.step-flash.step-flash (llama-server)")
    assert runtime.start(plan)
    agents = tmp_path / "home" / "Library" / "LaunchAgents"
    agent_file = agents / "io.step-flash.step-flash.plist"
    agent = plistlib.loads(agent_file.read_bytes())
    # The plan's agent, and in its environment the digest of the key file it read (none here).
    inputs = agent["EnvironmentVariables"].pop("STEP_FLASH_INPUTS")
    assert agent == plan.launch_agent and len(inputs) == 16
    # launchd runs the server behind the socket folder's guard (made, checked to be the user's alone, a
    # stale socket removed: after a crash, and at login once /tmp was emptied); then llama-server itself.
    argv = agent["ProgramArguments"]
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == str(plan.socket) and "[ -O " in argv[2]
    assert argv[4:] == list(plan.server.argv) and argv[4].startswith(str(tmp_path / "data" / "native"))
    # llama-server listens on its socket only; the proxy's agent runs Caddy in front of it.
    assert argv[argv.index("--host") + 1] == str(plan.socket) and folders == [str(plan.socket)]
    proxy_file = agents / "io.step-flash.step-flash.proxy.plist"
    proxy = plistlib.loads(proxy_file.read_bytes())
    assert proxy["ProgramArguments"] == ["/opt/homebrew/bin/caddy", "run", "--config", str(plan.proxy_file)]
    assert proxy["KeepAlive"] is True and len(proxy["EnvironmentVariables"]["STEP_FLASH_INPUTS"]) == 16
    config = json.loads(Path(str(plan.proxy_file)).read_text())
    server = config["apps"]["http"]["servers"]["step-flash"]
    assert server["listen"] == ["127.0.0.1:8080"]
    assert server["routes"][-1]["handle"][0]["upstreams"] == [{"dial": f"unix/{plan.socket}"}]
    assert agent["KeepAlive"] is True and agent["RunAtLoad"] is True
    assert (
        agent["StandardOutPath"]
        == agent["StandardErrorPath"]
        == str(tmp_path / "data" / "native" / "state" / "llama-server.log")
    )
    assert agent["EnvironmentVariables"]["DYLD_LIBRARY_PATH"].endswith("/bin")
    domain = f"gui/{os.getuid()}"
    target, proxy_target = f"{domain}/io.step-flash.step-flash", f"{domain}/io.step-flash.step-flash.proxy"
    assert [args for name, args in host.calls if name == "launchctl"] == [
        ("print", target),
        ("bootout", target),
        ("bootstrap", domain, str(agent_file)),
        ("print", proxy_target),
        ("bootout", proxy_target),
        ("bootstrap", domain, str(proxy_file)),
    ]
    state = runtime.state(plan)
    assert state.running and state.pid == 4242
    assert not runtime.start(plan), "the same plan again keeps the running agents"
    # An agent written before the guard existed runs the same server without it: it is replaced.
    agent_file.write_bytes(plistlib.dumps({**plan.launch_agent, "ProgramArguments": list(plan.server.argv)}))  # type: ignore[dict-item]
    assert runtime.start(plan)
    assert plistlib.loads(agent_file.read_bytes())["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert runtime.stop(plan)
    assert not agent_file.exists() and not proxy_file.exists()
    assert ("launchctl", ("bootout", target)) == host.calls[-1]
    assert not runtime.state(plan).running


def test_a_linux_native_server_says_nothing_supervises_it(tmp_path: Path) -> None:
    plan = fixed_plan("cpu", "default", {"data_dir": tmp_path, "native": True})
    assert plan.launch_agent is None
    assert plan.supervisor.startswith("nothing: background processes (llama-server")
    assert cpu_plan(tmp_path).supervisor.startswith("Docker: the compose service's restart policy")


def test_the_wake_bench_raises_a_server_that_never_served_and_records_a_failure_while_measuring(
    tmp_path: Path, model: Path
) -> None:
    from orchestrator.app.commands.bench import wake

    def wake_bench(engine: FakeEngine, host: FakeHost) -> wake.WakeRecord:
        return wake.bench_wake(
            cpu_plan(tmp_path, model),
            executors(engine, host),
            Notes().reporter(),
            results=tmp_path / "results",
            decisions=NO_HOOKS,
        )

    # The server never serves: the error stops the command, and nothing is recorded.
    engine = FakeEngine(state_after_up="exited")
    with pytest.raises(OrchestratorError):
        wake_bench(engine, FakeHost())
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    assert "compose_down" in engine.names()
    # It served, then a request failed: the failure is the record's, and the server is stopped.
    engine = FakeEngine()
    record = wake_bench(engine, FakeHost(chat_fails_after=0))
    assert record.error and "boom" in record.error
    assert "compose_down" in engine.names()
