"""`orchestrator up / status / down` for real: the cpu target's image, the SmolLM2 demo GGUF, compose,
and an OpenAI client talking to llama-server. Tests that only look share one server; a test that kills,
changes or removes a server starts its own, under its own compose project, so no test depends on
another's order."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.assets import PINNED_UPSTREAM_COMMIT
from tests.integration import BuiltImage, cli_env, container_id, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Server:
    project: str
    port: int
    args: list[str]
    env: dict[str, str]
    models: Path
    up: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, *self.args, env=self.env)


def start(cpu_image: BuiltImage, project: str, models: Path) -> Server:
    port = free_port()
    env = cli_env(
        ORCHESTRATOR_MODELS_DIR=str(models), ORCHESTRATOR_WAIT_TIMEOUT="180", ORCHESTRATOR_PROJECT=project
    )
    args = [*cpu_image.args, "--port", str(port)]
    up = run_cli("up", *args, env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    return Server(project, port, args, env, models, up.stdout)


@pytest.fixture(scope="module")
def shared(cpu_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only look at it."""
    server = start(cpu_image, "sfo-test-shared", tmp_path_factory.mktemp("models"))
    yield server
    server.cli("down")


@pytest.fixture
def own(cpu_image: BuiltImage, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of the test's own, for a test that changes or breaks it."""
    name = "sfo-test-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    server = start(cpu_image, name, tmp_path / "models")
    yield server
    server.cli("down")


def test_up_serves_the_demo_model(shared: Server) -> None:
    from openai import OpenAI

    assert f"http://127.0.0.1:{shared.port}/v1" in shared.up
    client = OpenAI(base_url=f"http://127.0.0.1:{shared.port}/v1", api_key="unused")
    # The `try` line `up` prints asks this, with a token cap.
    assert "max_tokens" in shared.up and "capital of France" in shared.up
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        max_tokens=64,
        temperature=0,
    )
    # An instruction-tuned demo with its own chat template: a short, sensible answer that ends itself.
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and 0 < reply.usage.completion_tokens < 64
    # The build says what it is: the pinned commit, in every response and in /props (not b0-unknown).
    assert reply.system_fingerprint is not None and PINNED_UPSTREAM_COMMIT[:7] in reply.system_fingerprint
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{shared.port}/props", timeout=10) as response:
        assert PINNED_UPSTREAM_COMMIT[:7] in json.load(response)["build_info"]


def test_status_json(shared: Server) -> None:
    out = shared.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["state"] == "running"
    assert status["model"] == "smollm2-135m-instruct"
    assert status["endpoint"] == f"http://127.0.0.1:{shared.port}/v1"
    assert status["uptime_s"] >= 0
    assert "predicted" in status["tokens_per_second"]
    # Where llama.cpp put the model, from the server's own log: the cpu target, all on the CPU.
    assert [d["name"] for d in status["devices"]["devices"]] == ["CPU"]
    (cpu,) = status["devices"]["devices"]
    assert cpu["model_mib"] > 90 and cpu["kv_mib"] > 0
    assert status["device_problem"] is None
    assert "devices" in shared.up and "CPU: model" in shared.up


def test_container_is_locked_down(shared: Server) -> None:
    config = json.loads(docker("inspect", container_id(shared.project)).stdout)[0]
    host = config["HostConfig"]
    assert config["Config"]["User"] == "10001:10001"
    assert host["CapDrop"] == ["ALL"] and not host["Privileged"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    mount = next(m for m in config["Mounts"] if m["Destination"] == "/models")
    assert mount["RW"] is False
    # llama-server is published nowhere: its proxy alone, on loopback, locked down the same way.
    assert not host["PortBindings"]
    proxy = json.loads(docker("inspect", container_id(shared.project, "proxy")).stdout)[0]
    assert proxy["Config"]["User"] == "10001:10001" and proxy["HostConfig"]["CapDrop"] == ["ALL"]
    assert proxy["HostConfig"]["ReadonlyRootfs"] is True and not proxy["HostConfig"]["Privileged"]
    bindings = proxy["HostConfig"]["PortBindings"]["8443/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(shared.port)}]


def test_up_twice_changes_nothing(shared: Server) -> None:
    before = container_id(shared.project)
    again = shared.cli("up")
    assert again.returncode == 0, again.stderr
    assert container_id(shared.project) == before


def test_crashed_server_comes_back(own: Server) -> None:
    from orchestrator.executors.health import Probe, http_readiness, wait_until_ready

    cid = container_id(own.project)
    pid = docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
    subprocess.run(["kill", "-9", pid], check=True)  # llama-server is the container's first process
    url = f"http://127.0.0.1:{own.port}/health"
    last = wait_until_ready(lambda: Probe(http_readiness(url)), timeout_s=120)
    assert last.readiness == "ready"
    assert int(docker("inspect", "-f", "{{.RestartCount}}", cid).stdout.strip()) >= 1
    status = json.loads(own.cli("status", "--json").stdout)
    assert status["state"] == "running" and status["restarts"] >= 1


def test_changed_plan_recreates_the_service(own: Server) -> None:
    before = container_id(own.project)
    changed = own.cli("up", "--ctx-size", "2048")
    assert changed.returncode == 0, changed.stderr
    after = container_id(own.project)
    assert after and after != before
    command = json.loads(docker("inspect", after).stdout)[0]["Config"]["Cmd"]
    # sh clears a stale socket, then runs llama-server's own command line.
    argv = command[command.index("llama-server") :]
    assert argv[argv.index("-c") + 1] == "2048"


def test_port_in_use_is_refused_before_anything_starts(cpu_image: BuiltImage) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-port-in-use")
        out = run_cli("up", *cpu_image.args, "--port", str(port), "--model", str(_demo()), env=env)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "already in use" in out.stderr
    assert container_id("sfo-test-port-in-use") == ""


def test_missing_model_is_refused(cpu_image: BuiltImage, tmp_path: Path) -> None:
    out = run_cli("up", *cpu_image.args, "--model", str(tmp_path / "nope.gguf"), env=cli_env())
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "nope.gguf is missing" in out.stderr


def test_a_file_that_is_not_gguf_is_refused(cpu_image: BuiltImage, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>not a model</html>")
    out = run_cli("up", *cpu_image.args, "--model", str(fake), env=cli_env())
    assert out.returncode == 3 and "is not a GGUF file" in out.stderr
    assert fake.read_bytes() == b"<html>not a model</html>"


def test_engine_not_running_is_one_line(cpu_image: BuiltImage, tmp_path: Path) -> None:
    env = cli_env(DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    out = run_cli("up", *cpu_image.args, env=env)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "cannot reach the Docker engine" in out.stderr


def _demo() -> Path:
    from tests.assets import demo_model

    return demo_model()


def test_exposed_server_needs_its_key(cpu_image: BuiltImage, tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("s3cret-test-key\n")
    key.chmod(0o600)
    port = free_port()
    env = cli_env(ORCHESTRATOR_WAIT_TIMEOUT="180", ORCHESTRATOR_PROJECT="sfo-test-key")
    args = [*cpu_image.args, "--model", str(_demo()), "--port", str(port), "--host", "0.0.0.0"]
    refused = run_cli("up", *args, env=env)
    assert refused.returncode == 2 and "without an API key" in refused.stderr
    up = run_cli("up", *args, "--api-key-file", str(key), env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        import ssl
        import urllib.error
        import urllib.request

        # Beyond loopback it is HTTPS, from the data directory's own authority.
        trust = ssl.create_default_context(cafile=str(Path(env["ORCHESTRATOR_DATA_DIR"]) / "tls" / "ca.crt"))
        url = f"https://127.0.0.1:{port}/v1/models"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=10, context=trust)
        assert denied.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret-test-key"})
        with urllib.request.urlopen(request, timeout=10, context=trust) as response:
            assert response.status == 200
        inspect = docker("inspect", container_id("sfo-test-key")).stdout
        assert "s3cret-test-key" not in inspect
    finally:
        run_cli("down", *args, "--api-key-file", str(key), env=env)


def test_down_keeps_the_model(own: Server) -> None:
    model = own.models / "demo" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    digest = sha256(model)
    assert container_id(own.project)
    down = own.cli("down")
    assert down.returncode == 0, down.stderr
    assert container_id(own.project) == ""
    assert sha256(model) == digest
