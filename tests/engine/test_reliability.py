"""A command that fails never breaks what was running, for real: the cpu image serving the demo model,
changed plans refused before anything changes, a changed plan whose server never gets ready replaced by
the one that served before, the kernel's OOM killer named, and the cap on tokens per request."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.assets import demo_model
from tests.integration import BuiltImage, cli_env, container_id, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

QUESTION = "What is the capital of France? Answer in one sentence."
# An answer far longer than any cap the tests set.
LONG = "Tell me a long story about a lighthouse keeper and a storm, in at least five paragraphs."


@dataclass(frozen=True)
class Serving:
    project: str
    port: int
    args: list[str]
    env: dict[str, str]

    def cli(self, *args: str, **extra: str) -> tuple[int, str]:
        done = run_cli(*args, *self.args, env={**self.env, **extra}, timeout=900)
        return done.returncode, done.stderr + done.stdout

    def ask(self, max_tokens: int | None = 32, question: str = QUESTION) -> tuple[str, str, int]:
        """The answer at temperature 0: its text, why it ended, and how many tokens it took."""
        from openai import OpenAI, omit

        client = OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": question}],
            temperature=0,
            max_tokens=max_tokens if max_tokens else omit,
        )
        assert reply.usage is not None
        choice = reply.choices[0]
        return choice.message.content or "", str(choice.finish_reason), reply.usage.completion_tokens


def _serve(cpu_image: BuiltImage, project: str, tmp_path: Path, **extra: str) -> Serving:
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    env = cli_env(
        ORCHESTRATOR_MODELS_DIR=str(models),
        ORCHESTRATOR_WAIT_TIMEOUT="120",
        ORCHESTRATOR_PROJECT=project,
        **extra,
    )
    port = free_port()
    serving = Serving(project, port, [*cpu_image.args, "--port", str(port)], env)
    code, out = serving.cli("up")
    assert code == 0, out
    return serving


@pytest.fixture
def running(cpu_image: BuiltImage, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Serving]:
    name = "sfo-test-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-[")
    serving = _serve(cpu_image, name, tmp_path)
    yield serving
    serving.cli("down")


def _container(project: str) -> str:
    return container_id(project, running_only=True)


def test_bad_input_while_a_server_runs_changes_nothing(running: Serving, tmp_path: Path) -> None:
    """Each refused in one line before anything is changed; the same server answers the same after."""
    answer = running.ask()
    container = _container(running.project)
    truncated = tmp_path / "cut" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    truncated.parent.mkdir()
    with demo_model().open("rb") as whole, truncated.open("wb") as part:
        part.write(whole.read(demo_model().stat().st_size // 2))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = str(holder.getsockname()[1])
        for args, code, says in (
            (("--rpc", f"127.0.0.1:{free_port()}"), 2, "does not answer"),
            (("--port", taken), 2, f"port {taken} on 127.0.0.1 is already in use"),
            (("--model", str(truncated)), 3, "truncated"),
        ):
            done = run_cli("up", *running.args, *args, env=running.env, timeout=600)
            assert done.returncode == code, done.stderr
            assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert _container(running.project) == container
            assert running.ask() == answer


def test_a_changed_plan_that_never_gets_ready_gives_the_previous_server_back(running: Serving) -> None:
    """The replacement is killed for memory (memory_limit far below what it needs, --force past the
    refusal): up fails saying so, and the server that ran before serves again, on its own port."""
    answer = running.ask()
    code, out = running.cli("up", "--port", str(free_port()), "--force", ORCHESTRATOR_MEMORY_LIMIT="48m")
    assert code == 1, out
    assert "out of memory: the kernel's OOM killer ended llama-server (OOMKilled, exit 137)" in out
    assert f"the previous server is serving again at http://127.0.0.1:{running.port}" in out
    assert running.ask() == answer
    status = json.loads(running.cli("status", "--json")[1])
    assert status["state"] == "running" and status["out_of_memory"] is None


def test_status_names_the_oom_killer(cpu_image: BuiltImage, tmp_path: Path) -> None:
    """Nothing to go back to: the first server under a memory limit it cannot live in. up and status
    both say out of memory, with the memory plan's figures and fixes, not a plain restart count."""
    project = "sfo-test-oom"
    env = cli_env(
        ORCHESTRATOR_WAIT_TIMEOUT="120", ORCHESTRATOR_PROJECT=project, ORCHESTRATOR_MEMORY_LIMIT="48m"
    )
    args = [*cpu_image.args, "--port", str(free_port())]
    try:
        refused = run_cli("up", *args, env=env, timeout=600)
        assert refused.returncode == 4 and "a higher memory_limit, or none" in refused.stderr
        up = run_cli("up", *args, "--force", env=env, timeout=600)
        assert up.returncode == 1 and "out of memory: the kernel's OOM killer" in up.stderr, up.stderr
        status = json.loads(run_cli("status", *args, "--json", env=env).stdout)
        assert (
            "OOMKilled" in status["out_of_memory"]
            and "the memory plan puts the server at" in status["out_of_memory"]
        )
        text = run_cli("status", *args, env=env).stdout
        assert "out of memory" in text
    finally:
        run_cli("down", *args, env=env)


def test_a_request_is_capped_at_the_targets_tokens_unless_it_asks_for_fewer(
    cpu_image: BuiltImage, tmp_path: Path
) -> None:
    """n_predict 8 here (the cpu target's is 2048): a request asking for nothing gets 8; one asking for
    4, or for 64, gets what it asked for (llama-server 0c1e570 caps only the requests that set none)."""
    serving = _serve(cpu_image, "sfo-test-n-predict", tmp_path, ORCHESTRATOR_N_PREDICT="8")
    try:
        for asked, got in ((None, 8), (4, 4), (64, 64)):
            _text, reason, tokens = serving.ask(max_tokens=asked, question=LONG)
            assert (tokens, reason) == (got, "length"), asked
    finally:
        serving.cli("down")
