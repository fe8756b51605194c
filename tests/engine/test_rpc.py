"""Two RPC workers and a head on this machine, all on loopback: the cpu image's rpc-server started by
`orchestrator worker up`, a head with `--rpc` serving gemma-3-270m over both, the same greedy answer as a
server alone, a worker lost and brought back, and the refusals. Nothing listens beyond 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.assets import demo_model
from tests.integration import BuiltImage, cli_env, container_id, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

QUESTION = {
    "messages": [{"role": "user", "content": "Name three colours of the rainbow."}],
    "temperature": 0,
    "max_tokens": 24,
}


def cli(image: BuiltImage, project: str, *args: str, models: Path | None = None) -> tuple[int, str, str]:
    env = cli_env(ORCHESTRATOR_PROJECT=project, ORCHESTRATOR_WAIT_TIMEOUT="180")
    extra = ["--model", str(models / "gemma-3-270m-Q4_K_M.gguf")] if models else []
    done = run_cli(*args, *image.args, *extra, env=env, timeout=1800)
    return done.returncode, done.stdout, done.stderr


def ask(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(QUESTION).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return str(json.load(response)["choices"][0]["message"]["content"])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rpc") / "models"
    folder.mkdir(mode=0o755)
    shutil.copyfile(demo_model(), folder / "gemma-3-270m-Q4_K_M.gguf")
    return folder


@pytest.fixture(scope="module")
def workers(cpu_image: BuiltImage) -> Iterator[dict[str, int]]:
    ports = {"sfo-test-rpc-a": free_port(), "sfo-test-rpc-b": free_port()}
    try:
        for project, port in ports.items():
            code, out, err = cli(cpu_image, project, "worker", "up", "--listen", f"127.0.0.1:{port}")
            assert code == 0, err + out
            assert "rpc-server has no authentication" in err + out
        yield ports
    finally:
        for project in ports:
            cli(cpu_image, project, "worker", "down")


def test_a_head_spreads_the_model_over_two_workers(
    cpu_image: BuiltImage, workers: dict[str, int], models: Path
) -> None:
    alone, head = free_port(), free_port()
    rpc = ",".join(f"127.0.0.1:{port}" for port in workers.values())
    try:
        code, _out, err = cli(cpu_image, "sfo-test-rpc-alone", "up", "--port", str(alone), models=models)
        assert code == 0, err
        expected = ask(alone)
        code, _out, err = cli(cpu_image, "sfo-test-rpc-alone", "down", models=models)
        assert code == 0, err

        code, out, err = cli(
            cpu_image, "sfo-test-rpc-head", "up", "--port", str(head), "--rpc", rpc, models=models
        )
        assert code == 0, err + out
        # llama.cpp put layers on both workers' devices, and the answer is the one the server gave alone.
        code, log, _ = cli(cpu_image, "sfo-test-rpc-head", "logs", "--tail", "400", models=models)
        for port in workers.values():
            assert f"[127.0.0.1:{port}] model buffer size" in log, log
        assert ask(head) == expected
        code, out, _ = cli(cpu_image, "sfo-test-rpc-head", "status", "--json", "--rpc", rpc, models=models)
        assert code == 0 and all(json.loads(out)["workers"].values())
        # On the host's network to reach its workers, the head's llama-server still listens on no TCP
        # port: only on the socket its proxy dials.
        import psutil

        server = json.loads(docker("inspect", container_id("sfo-test-rpc-head")).stdout)[0]
        assert server["HostConfig"]["NetworkMode"] == "host"
        listening = [
            c
            for c in psutil.Process(server["State"]["Pid"]).net_connections(kind="inet")
            if c.status == "LISTEN"
        ]
        assert not listening, listening

        # A worker lost while serving: requests fail (no hang), status names the one that is gone.
        lost_project, lost_port = "sfo-test-rpc-b", workers["sfo-test-rpc-b"]
        code, _out, err = cli(cpu_image, lost_project, "worker", "down")
        assert code == 0, err
        with pytest.raises((urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError)):
            ask(head)
        code, out, _ = cli(cpu_image, "sfo-test-rpc-head", "status", "--json", "--rpc", rpc, models=models)
        assert json.loads(out)["workers"][f"127.0.0.1:{lost_port}"] is False
        # Brought back: the head starts again over both and answers as before; the model file is untouched.
        code, out, err = cli(cpu_image, lost_project, "worker", "up", "--listen", f"127.0.0.1:{lost_port}")
        assert code == 0, err + out
        cli(cpu_image, "sfo-test-rpc-head", "down", models=models)
        code, out, err = cli(
            cpu_image, "sfo-test-rpc-head", "up", "--port", str(head), "--rpc", rpc, models=models
        )
        assert code == 0, err + out
        assert ask(head) == expected
        assert (models / "gemma-3-270m-Q4_K_M.gguf").stat().st_size == demo_model().stat().st_size

        # The publisher's benchmark through the same workers, once the head lets go of them; the record
        # names them.
        results = models.parent / "results"
        bench = ("bench", "--rpc", rpc, "--npp", "0", "--ntg", "8", "--npl", "1", "--results", str(results))
        code, _out, err = cli(cpu_image, "sfo-test-rpc-head", *bench, models=models)
        assert code == 2 and "--stop-server" in err
        cli(cpu_image, "sfo-test-rpc-head", "down", models=models)
        code, out, err = cli(cpu_image, "sfo-test-rpc-head", *bench, models=models)
        assert code == 0, err + out
        (record,) = [json.loads(line) for line in (results / "bench.jsonl").read_text().splitlines()]
        assert record["complete"] and record["runtime"]["rpc_workers"] == rpc.split(",")
    finally:
        cli(cpu_image, "sfo-test-rpc-alone", "down", models=models)
        cli(cpu_image, "sfo-test-rpc-head", "down", models=models)


def test_a_worker_that_is_not_up_stops_the_head_before_it_starts(cpu_image: BuiltImage, models: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    port = str(free_port())
    code, _out, err = cli(
        cpu_image, "sfo-test-rpc-nobody", "up", "--rpc", nobody, "--port", port, models=models
    )
    assert code == 2 and f"RPC worker {nobody} does not answer" in err and len(err.strip().splitlines()) == 1
    running = docker("ps", "-aq", "--filter", "label=com.docker.compose.project=sfo-test-rpc-nobody")
    assert running.stdout.strip() == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("worker", "up", "--listen", "0.0.0.0"), "never listens on every address"),
        (("worker", "up", "--listen", "93.184.216.34:50052"), "a public address"),
        (("up", "--rpc", "127.0.0.1"), "expected ADDRESS:PORT"),
    ],
)
def test_open_public_and_malformed_addresses_are_one_line(
    cpu_image: BuiltImage, args: tuple[str, ...], says: str
) -> None:
    code, _out, err = cli(cpu_image, "sfo-test-rpc-refused", *args)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    running = docker("ps", "-aq", "--filter", "label=com.docker.compose.project=sfo-test-rpc-refused-worker")
    assert running.stdout.strip() == ""
