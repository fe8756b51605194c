"""Living with a server, through the recording fakes: the idle setting, deployments recorded by up,
upgrade (checked, switched, or rolled back with the failed check's figures), rollback and history."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.app.commands import server_lifecycle as serving
from orchestrator.app.commands import upgrade_rollback as deployments
from orchestrator.app.steps.deploying import CheckFailed
from orchestrator.app.steps.serving import ServeFailed
from orchestrator.core.deployments import Deployment, kept_images, removable_images, rollback_target
from orchestrator.core.plan import with_model
from orchestrator.core.settings import parse_duration
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors.deployment_history import read_history
from tests.fakes import FakeEngine, FakeHost, Notes, cpu_plan, executors
from tests.planning import fixed_plan

NEWER = "b" * 40


def _up(plan: object, engine: FakeEngine, host: FakeHost) -> serving.Served:
    return serving.up(
        plan,  # type: ignore[arg-type]
        executors(engine, host),
        Notes().reporter(),
        rebuild=False,
        force=False,
        decisions={},
    )


def _upgrade(plan: object, engine: FakeEngine, host: FakeHost, **options: object) -> deployments.Upgraded:
    return deployments.upgrade(
        plan,  # type: ignore[arg-type]
        executors(engine, host),
        Notes().reporter(),
        check_only=bool(options.get("check_only", False)),
        keep=bool(options.get("keep", False)),
    )


def test_idle_is_a_duration_or_off_and_each_target_has_its_own() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("2h") == 7200
    assert parse_duration("off") == 0 and parse_duration("45") == 45
    for bad in ("soon", "-5", "1.5h", "10d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    spark = fixed_plan("dgx-spark", "default")
    assert spark.idle_s == 1800 and "--sleep-idle-seconds" in spark.server.argv
    assert spark.server.argv[spark.server.argv.index("--sleep-idle-seconds") + 1] == "1800"
    cpu = fixed_plan("cpu", "default")
    assert cpu.idle_s == 0 and "--sleep-idle-seconds" not in cpu.server.argv
    quick = fixed_plan("cpu", "default", {"idle": "2s"})
    assert quick.server.argv[quick.server.argv.index("--sleep-idle-seconds") + 1] == "2"
    never = fixed_plan("ryzen-ai-max", "default", {"idle": "off"})
    assert "--sleep-idle-seconds" not in never.server.argv


def test_a_bad_idle_is_one_line(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.app.cli import main

    assert main(["plan", "--target", "cpu", "--idle", "soon"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "expected a duration such as 90s, 30m or 2h, or off" in err[0]
    assert main(["plan", "--target", "cpu", "--idle", "90s", "--json"]) == 0


def test_status_says_asleep_and_what_the_container_holds(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(memory=44 << 20), FakeHost(props_answer={"is_sleeping": True})
    plan = cpu_plan(tmp_path, model, idle="2s")
    _up(plan, engine, host)
    status = serving.status(plan, executors(engine, host))
    data = status.to_dict()
    assert data["sleeping"] is True and data["idle_seconds"] == 2 and data["memory_bytes"] == 44 << 20
    assert data["deployment"] == 1


def test_up_records_a_deployment_and_upgrade_checks_and_switches(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost(newest=NEWER)
    plan = cpu_plan(tmp_path, model)
    _up(plan, engine, host)
    (first,) = read_history(tmp_path, plan.project)
    assert first.via == "up" and first.image == plan.build.tag  # type: ignore[union-attr]
    assert first.source_commit == plan.source.commit and first.model_identity == plan.model.identity
    assert first.compose == plan.compose_file.read_text()  # type: ignore[union-attr]

    checked = _upgrade(plan, engine, host, check_only=True)
    assert checked.after is None and NEWER[:7] in checked.newer
    assert len(read_history(tmp_path, plan.project)) == 1, "--check changes nothing"

    done = _upgrade(plan, engine, host)
    assert done.after is not None and done.after.id == 2 and done.after.via == "upgrade"
    assert done.after.source_commit == NEWER and NEWER[:7] in done.after.image
    assert done.after.figures["decode_tokens_per_second"] == 40.0
    assert done.after.figures["baseline"]["decode_tokens_per_second"] == 40.0
    assert NEWER[:7] in plan.compose_file.read_text()  # type: ignore[union-attr]
    history = deployments.history(plan, executors(engine, host))
    assert history.serving == 2 and [d.id for d in history.deployments] == [1, 2]

    # Back to the first: its compose file again, recorded as a deployment of its own.
    back = deployments.rollback(plan, executors(engine, host), Notes().reporter(), wanted=None)
    assert back.to.id == 1 and back.recorded.via == "rollback to 1"
    assert plan.compose_file.read_text() == first.compose  # type: ignore[union-attr]
    assert deployments.history(plan, executors(engine, host)).serving == 3


def test_an_upgrade_that_decodes_slower_goes_back_and_says_which_check(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost(newest=NEWER)
    plan = cpu_plan(tmp_path, model)
    _up(plan, engine, host)
    before = plan.compose_file.read_text()  # type: ignore[union-attr]
    host.decode_rates = [40.0, 10.0]
    with pytest.raises(CheckFailed) as failed:
        _upgrade(plan, engine, host)
    message = str(failed.value)
    assert "decode check failed: 10.00 tokens/s is 25% of the current deployment's 40.00 tokens/s" in message
    assert "previous server is serving again" in message
    assert plan.compose_file.read_text() == before, "the previous deployment serves"  # type: ignore[union-attr]
    assert [d.id for d in read_history(tmp_path, plan.project)] == [1]
    # --keep leaves the new one up for inspection instead.
    host.decode_rates = [40.0, 10.0]
    with pytest.raises(CheckFailed, match="kept running for inspection"):
        _upgrade(plan, engine, host, keep=True)
    assert NEWER[:7] in plan.compose_file.read_text()  # type: ignore[union-attr]


def test_an_upgrade_that_never_starts_goes_back(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost(newest=NEWER)
    plan = cpu_plan(tmp_path, model)
    _up(plan, engine, host)
    before = plan.compose_file.read_text()  # type: ignore[union-attr]
    engine.states_after_up = ["exited", "running"]
    with pytest.raises(ServeFailed, match="previous server is serving again"):
        _upgrade(plan, engine, host)
    assert plan.compose_file.read_text() == before  # type: ignore[union-attr]
    assert engine.service_state is not None and engine.service_state.state == "running"


def test_upgrade_and_rollback_refuse_in_one_line(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost(newest=None, reachable=False)
    plan = cpu_plan(tmp_path, model)
    with pytest.raises(
        UsageError, match="no server runs under project step-flash: start one with 'orchestrator up'"
    ):
        _upgrade(plan, engine, host)
    _up(plan, engine, FakeHost())
    with pytest.raises(UsageError, match=r"cannot reach .* to learn its newest commit \(offline\?\)"):
        _upgrade(plan, engine, host)
    ex = executors(engine, host)
    with pytest.raises(UsageError, match="is the first one recorded"):
        deployments.rollback(plan, ex, Notes().reporter(), wanted=None)
    with pytest.raises(UsageError, match="no deployment 7"):
        deployments.rollback(plan, ex, Notes().reporter(), wanted=7)


def test_a_server_running_without_its_compose_file_is_one_line(tmp_path: Path, model: Path) -> None:
    """Its compose file deleted while it runs: nothing to record it by, said as such, not an assert."""
    engine, host = FakeEngine(), FakeHost(newest=NEWER)
    plan = cpu_plan(tmp_path, model)
    _up(plan, engine, host)
    plan.compose_file.unlink()  # type: ignore[union-attr]
    with pytest.raises(OrchestratorError, match=r"its compose file .* is gone; 'orchestrator up' starts it"):
        _upgrade(plan, engine, host)


def test_which_deployment_rollback_returns_to_and_which_images_are_kept() -> None:
    def made(i: int, image: str) -> Deployment:
        return Deployment(
            i, "t", "up", "p", image, None, "s", None, None, "m", None, "e", compose=f"c{image}"
        )

    history = [made(1, "a"), made(2, "b"), made(3, "c"), made(4, "d"), made(5, "b")]
    assert rollback_target(history, history[-1], None).id == 4
    assert rollback_target(history, history[-1], 1).id == 1
    with pytest.raises(UsageError, match="what serves now"):
        rollback_target(history, history[-1], 2)
    assert kept_images(history) == ["b", "d", "c"] and removable_images(history) == ["a"]


def test_an_upgrade_source_that_does_not_resolve_is_one_line(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.app.cli import main

    assert main(["upgrade", "--target", "cpu", "--source", str(isolated_env / "no-such-tree")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["rollback", "--target", "cpu", "notanumber"]) == 2


def test_bench_beside_a_sleeping_server_counts_it_as_woken(tmp_path: Path) -> None:
    """Asleep, the server's container holds 44 MiB; a request wakes it to its planned size, so a benchmark
    beside it is still refused as if it were awake."""
    from orchestrator.app.commands.bench import batched
    from orchestrator.errors import WontFit

    engine, host = FakeEngine(memory=44 << 20), FakeHost(props_answer={"is_sleeping": True})
    plan = fixed_plan("dgx-spark", "default", {"data_dir": tmp_path})
    stand_in = tmp_path / "models" / "step3.5_flash_Q4_K_S.gguf"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_bytes(b"GGUF stand-in")
    plan = with_model(plan, replace(plan.model, path=stand_in))
    serving.up(
        plan,
        executors(engine, host),
        Notes().reporter(),
        rebuild=False,
        force=True,
        decisions={"drop-page-cache": False},
    )
    assert serving.status(plan, executors(engine, host)).sleeping is True
    with pytest.raises(WontFit, match=r"beside the running server's 10\d\.\d GiB"):
        batched.bench(
            plan,
            executors(engine, host),
            Notes().reporter(),
            results=tmp_path / "results",
            on_row=lambda *_: None,
            decisions={"drop-page-cache": False},
        )


def _secret_file(compose: str, name: str) -> Path:
    import yaml

    return Path(yaml.safe_load(compose)["secrets"][name]["file"])


def test_a_new_key_cors_or_certificate_replaces_the_server_and_rollback_restores_what_it_ran_with(
    tmp_path: Path, model: Path
) -> None:
    import yaml

    from orchestrator.core.plan.compose import proxy_config_source

    engine, host = FakeEngine(), FakeHost()
    keys = tmp_path / "keys"
    keys.mkdir()
    first_key, second_key = keys / "k1", keys / "k2"
    first_key.write_text("first-key\n")
    second_key.write_text("second-key\n")
    for key in (first_key, second_key):
        key.chmod(0o600)
    plan = cpu_plan(tmp_path, model, api_key_file=first_key)
    _up(plan, engine, host)
    first = plan.compose_file.read_text()  # type: ignore[union-attr]
    assert _secret_file(first, "api_key").read_text() == "first-key\n"

    # The same plan again: the same document, so compose keeps the running containers.
    _up(plan, engine, host)
    assert plan.compose_file.read_text() == first  # type: ignore[union-attr]

    # Another key: the document names another copy, so compose replaces the server; a new deployment.
    rotated = cpu_plan(tmp_path, model, api_key_file=second_key)
    _up(rotated, engine, host)
    second = rotated.compose_file.read_text()  # type: ignore[union-attr]
    assert second != first and _secret_file(second, "api_key").read_text() == "second-key\n"
    # Compose compares each service's own definition: the server's carries what it reads, so it changes.
    server_labels = [yaml.safe_load(text)["services"]["llama-server"]["labels"] for text in (first, second)]
    assert server_labels[0]["io.step-flash.inputs"] != server_labels[1]["io.step-flash.inputs"]
    assert _secret_file(first, "api_key").read_text() == "first-key\n"  # kept for rollback
    assert [d.id for d in read_history(tmp_path, plan.project)] == [1, 2, 3]

    # A changed --cors changes the proxy's configuration file the document names.
    opened = cpu_plan(tmp_path, model, api_key_file=second_key, cors="http://127.0.0.1:3000")
    _up(opened, engine, host)
    third = opened.compose_file.read_text()  # type: ignore[union-attr]
    config = proxy_config_source(yaml.safe_load(third))
    assert config is not None and "http://127.0.0.1:3000" in config.read_text()
    assert config != proxy_config_source(yaml.safe_load(second))

    # Rollback to the deployment with the first key: its compose file, so its key copy, again.
    notes = Notes()
    back = deployments.rollback(plan, executors(engine, host), notes.reporter(), wanted=1)
    assert back.to.id == 1
    assert _secret_file(plan.compose_file.read_text(), "api_key").read_text() == "first-key\n"  # type: ignore[union-attr]
    assert any("ran with another API key" in n for n in notes.lines), "the rotated key coming back is said"

    # A deployment whose copies are gone is refused in one line, and nothing changes.
    _secret_file(second, "api_key").unlink()
    with pytest.raises(UsageError, match="is gone"):
        deployments.rollback(plan, executors(engine, host), Notes().reporter(), wanted=3)
    assert _secret_file(plan.compose_file.read_text(), "api_key").read_text() == "first-key\n"  # type: ignore[union-attr]


def test_a_renewed_certificate_replaces_the_proxy(tmp_path: Path, model: Path) -> None:
    engine, host = FakeEngine(), FakeHost()
    key = tmp_path / "key"
    key.write_text("k\n")
    key.chmod(0o600)
    plan = cpu_plan(tmp_path, model, api_key_file=key, tls="on")
    _up(plan, engine, host)
    first = plan.compose_file.read_text()  # type: ignore[union-attr]
    # The server certificate made again (as when a name is added or its end is near).
    (tmp_path / "tls" / "server.crt").unlink()
    _up(plan, engine, host)
    second = plan.compose_file.read_text()  # type: ignore[union-attr]
    assert _secret_file(second, "tls_certificate") != _secret_file(first, "tls_certificate")


def test_rollback_records_the_proxy_configuration_it_runs_and_never_rewrites_a_content_named_copy(
    tmp_path: Path, model: Path
) -> None:
    import yaml

    from orchestrator.core.plan.compose import proxy_config_source

    engine, host = FakeEngine(), FakeHost()

    def up_with(origin: str) -> None:
        _up(cpu_plan(tmp_path, model, cors=origin), engine, host)

    up_with("http://127.0.0.1:3000")
    up_with("http://127.0.0.1:4000")
    plan = cpu_plan(tmp_path, model, cors="http://127.0.0.1:4000")
    back = deployments.rollback(plan, executors(engine, host), Notes().reporter(), wanted=1)
    first_copy = proxy_config_source(yaml.safe_load(back.to.compose))
    assert first_copy is not None
    first_text = first_copy.read_text()
    assert "3000" in first_text and back.recorded.proxy == first_text
    up_with("http://127.0.0.1:5000")
    deployments.rollback(plan, executors(engine, host), Notes().reporter(), wanted=back.recorded.id)
    assert first_copy.read_text() == first_text, "a content-named copy keeps its content"
    history = read_history(tmp_path, plan.project)
    assert all(
        d.proxy == proxy_config_source(yaml.safe_load(d.compose)).read_text()  # type: ignore[union-attr]
        for d in history
    )


def test_a_content_named_copy_is_restored_only_when_missing_and_only_with_its_own_content(
    tmp_path: Path,
) -> None:
    import hashlib

    from orchestrator.executors.runtime import _restorable

    data = b"the key\n"
    named = tmp_path / f"api_key.{hashlib.sha256(data).hexdigest()[:16]}"
    assert _restorable(named, data)
    assert not _restorable(named, b"other bytes"), "never other bytes under a content name"
    named.write_bytes(data)
    assert not _restorable(named, data), "kept as it is when there"
    assert _restorable(tmp_path / "step-flash.proxy.json", b"{}"), "a file of an older version is restored"


def _deployment(i: int, compose: str, image: str = "img") -> Deployment:
    return Deployment(
        i, "t", "up", "p", image, None, "s", None, None, "m", None, "e", compose=compose, proxy="{}"
    )


def test_a_history_record_is_a_json_object_of_the_right_shape() -> None:
    record = _deployment(3, "c3").to_dict()
    assert record["id"] == 3 and record["compose"] == "c3" and record["proxy"] == "{}"
    # Keys a later version added are passed over; the rest round-trips.
    assert Deployment.from_dict({**record, "added_later": 1}) == _deployment(3, "c3")
    with pytest.raises(TypeError) as not_an_object:
        Deployment.from_dict([record])  # type: ignore[arg-type]
    assert str(not_an_object.value) == "a deployment is a JSON object, not list"
    with pytest.raises(TypeError, match=r"^id is '3', not int$"):
        Deployment.from_dict({**record, "id": "3"})


def test_history_and_status_show_a_deployment_without_its_compose_text_or_proxy_configuration() -> None:
    shown = _deployment(1, "services: {}").summary()
    assert "compose" not in shown and "proxy" not in shown
    assert shown["id"] == 1 and shown["image"] == "img" and shown["endpoint"] == "e"


def test_each_deployment_gets_the_next_id_after_the_highest_recorded() -> None:
    from orchestrator.core.deployments import next_id

    assert next_id([]) == 1
    assert next_id([_deployment(4, "a"), _deployment(2, "b")]) == 5


def test_what_serves_now_is_the_newest_deployment_that_ran_the_running_compose_file() -> None:
    from orchestrator.core.deployments import current

    history = [_deployment(1, "a"), _deployment(2, "b"), _deployment(3, "a")]
    assert current(history, "a") == history[2]
    assert current(history, "b") == history[1]
    # A server none of them started, or none at all: no deployment serves now.
    assert current(history, "c") is None and current(history, None) is None


def test_rollback_refusals_name_the_ids_there_are_and_what_to_run() -> None:
    history = [_deployment(1, "a"), _deployment(2, "b")]
    with pytest.raises(UsageError) as unknown:
        rollback_target(history, history[-1], 7)
    assert str(unknown.value) == "no deployment 7; 'orchestrator history' lists them (ids: 1, 2)"
    with pytest.raises(UsageError) as none_recorded:
        rollback_target([], None, 7)
    assert str(none_recorded.value) == "no deployment 7; 'orchestrator history' lists them (ids: none)"
    with pytest.raises(UsageError) as unrecorded:
        rollback_target(history, None, None)
    assert str(unrecorded.value) == (
        "no recorded deployment serves now; 'orchestrator history' lists them: rollback ID"
    )
    # A named deployment is taken even with no recorded one serving now.
    assert rollback_target(history, None, 2) == history[1]


def test_rollback_goes_to_an_earlier_deployment_that_ran_another_server() -> None:
    # 3 ran what 2 ran again (an up with nothing changed): going back from 3 skips 2, and nothing later
    # than what serves now is ever a rollback's target.
    history = [_deployment(1, "a"), _deployment(2, "b"), _deployment(3, "b"), _deployment(4, "c")]
    assert rollback_target(history, history[2], None) == history[0]
    with pytest.raises(UsageError, match=r"^deployment 1 is the first one recorded; "):
        rollback_target(history, history[0], None)
