"""Living with a server for real, on the cpu image: it sleeps when idle and wakes on a request; upgrades
to another llama.cpp tree (a copy of the pinned one with a change, built from the compile cache) are
checked and switched, or rolled back by themselves; rollback; an upgrade interrupted half-way."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.assets import llama_cpp_source
from tests.integration import BuiltImage, cli_env, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

QUESTION = {
    "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    "max_tokens": 32,
    "temperature": 0,
}


@dataclass(frozen=True)
class Running:
    project: str
    port: int
    env: dict[str, str]
    # The plan options without --source (the upgrade names its own).
    options: tuple[str, ...]
    source: Path

    def cli(self, *args: str, source: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args, *self.options, "--source", str(source or self.source), env=self.env, timeout=1800
        )

    def _chat(self, max_tokens: int) -> dict[str, Any]:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            json.dumps({**QUESTION, "max_tokens": max_tokens}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return dict(json.load(response))

    def ask(self, max_tokens: int = 32) -> str:
        return str(self._chat(max_tokens)["choices"][0]["message"]["content"])

    def decode_speed(self) -> float:
        """Tokens per second decoding the answer, as the server times it (what upgrade's check reads)."""
        return float(self._chat(32)["timings"]["predicted_per_second"])

    def status(self) -> dict[str, object]:
        done = self.cli("status", "--json")
        return dict(json.loads(done.stdout))


def _options(cpu_image: BuiltImage) -> tuple[list[str], Path]:
    args = list(cpu_image.args)
    at = args.index("--source")
    source = Path(args[at + 1])
    del args[at : at + 2]
    return args, source


@pytest.fixture(scope="module")
def running(cpu_image: BuiltImage) -> Iterator[Running]:
    options, source = _options(cpu_image)
    port = free_port()
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-living", ORCHESTRATOR_WAIT_TIMEOUT="300")
    server = Running("sfo-test-living", port, env, (*options, "--port", str(port)), source)
    up = server.cli("up")
    assert up.returncode == 0, up.stderr + up.stdout
    yield server
    server.cli("down")


def _tree(folder: Path, change: Callable[[Path], None]) -> Path:
    """A copy of the pinned tree (hard links: instant) with one change; without its git pointer, so its
    revision is the changed tree's own."""
    from orchestrator.executors.images import ignore_build_outputs

    def ignored(directory: str, names: list[str]) -> set[str]:
        return ignore_build_outputs(directory, names) | ({".step-flash-revision"} & set(names))

    tree = folder / "llama.cpp"
    shutil.copytree(llama_cpp_source(), tree, ignore=ignored, copy_function=os.link)
    change(tree)
    return tree


def _replace(path: Path, text: str) -> None:
    """A file of the linked copy written anew (never through the link into the cached tree)."""
    path.unlink()
    path.write_text(text)


def _harmless(tree: Path) -> None:
    readme = tree / "tools" / "server" / "README.md"
    _replace(readme, readme.read_text() + "\n<!-- step-flash test: an upgrade that changes nothing -->\n")


def _never_starts(tree: Path, _running: Running) -> None:
    _replace(tree / "tools" / "server" / "main.cpp", "int main() { return 3; }\n")


def _decodes_slowly(tree: Path, running: Running) -> None:
    """A server whose every decode first sleeps a fixed time, then runs libllama's own (llama_process,
    found past this definition with RTLD_NEXT): three or more times the serving build's time per token,
    measured now, so it decodes at most a quarter as fast as the current one on any machine, half the
    check's 0.5 tolerance. (Threads that spin took a share of the cores that depended on their number.)
    The sleep is rounded up to a power of two, so a machine's next run finds the same tree in its cache."""
    per_token_ms = 1000 / running.decode_speed()
    sleep_ms = 2 ** math.ceil(math.log2(max(1.0, 3 * per_token_ms)))
    _replace(
        tree / "tools" / "server" / "main.cpp",
        f"""#include "llama.h"

#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <thread>

int llama_server(int argc, char ** argv);

extern "C" int32_t llama_process(llama_context * ctx, llama_process_type type, llama_batch_ext * batch) {{
    using process_fn = int32_t (*)(llama_context *, llama_process_type, llama_batch_ext *);
    static const auto next = reinterpret_cast<process_fn>(dlsym(RTLD_NEXT, "llama_process"));
    std::this_thread::sleep_for(std::chrono::milliseconds({sleep_ms}));
    return next(ctx, type, batch);
}}

int main(int argc, char ** argv) {{
    return llama_server(argc, argv);
}}
""",
    )


def test_an_upgrade_is_checked_and_switched_and_rollback_returns(running: Running, tmp_path: Path) -> None:
    before = running.status()
    answer = running.ask()
    tree = _tree(tmp_path, _harmless)
    done = running.cli("upgrade", "--tolerance", "0.5", source=tree)
    assert done.returncode == 0, done.stderr + done.stdout
    after = running.status()
    assert after["state"] == "running" and after["image"] != before["image"]
    assert int(str(after["deployment"])) > int(str(before["deployment"]))
    assert running.ask().strip(), "the new deployment answers"
    history = json.loads(running.cli("history", "--json").stdout)
    assert history["serving"] == after["deployment"] and history["deployments"][-1]["via"] == "upgrade"
    back = running.cli("rollback")
    assert back.returncode == 0, back.stderr + back.stdout
    restored = running.status()
    assert restored["image"] == before["image"]
    assert running.ask() == answer, "the same build answers the same greedy request the same"


@pytest.mark.parametrize(
    ("change", "words"),
    [(_never_starts, "did not become ready"), (_decodes_slowly, "decode check failed")],
    ids=["never-starts", "decodes-slowly"],
)
def test_a_failed_upgrade_puts_the_previous_deployment_back(
    running: Running, tmp_path: Path, change: Callable[[Path, Running], None], words: str
) -> None:
    before = running.status()
    answer = running.ask()
    model = Path(running.env["ORCHESTRATOR_DATA_DIR"]) / "models" / "demo" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    tree = _tree(tmp_path, lambda tree: change(tree, running))
    done = running.cli("upgrade", "--tolerance", "0.5", source=tree)
    print(done.stderr.strip().splitlines()[-1:])
    assert done.returncode != 0, done.stdout
    assert words in done.stderr and "previous server is serving again" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    after = running.status()
    assert after["image"] == before["image"] and after["deployment"] == before["deployment"]
    assert running.ask() == answer
    assert hashlib.sha256(model.read_bytes()).hexdigest() == digest, "the user's model is untouched"


def test_an_interrupted_upgrade_leaves_one_deployment_serving_or_says_how(
    running: Running, tmp_path: Path
) -> None:
    """Ctrl-C in the swap (the image of the harmless change is built already, by the first test): the
    command ends with 130, and either a deployment serves or its last line names the rollback that
    starts the previous one; after that command one does."""
    before = running.status()
    tree = _tree(tmp_path, _harmless)
    upgrade = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "upgrade",
            "--tolerance",
            "0.5",
            *running.options,
            "--source",
            str(tree),
        ],
        env=running.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert upgrade.stdout is not None
    seen = ""
    deadline = time.monotonic() + 600
    while "building" not in seen and time.monotonic() < deadline:
        seen += upgrade.stdout.readline()
    time.sleep(2)
    upgrade.send_signal(signal.SIGINT)
    rest, _ = upgrade.communicate(timeout=300)
    said = seen + rest
    assert upgrade.returncode == 130, said
    status = running.status()
    if status["state"] != "running":
        assert f"orchestrator rollback {before['deployment']}" in said, said
        again = running.cli("rollback", str(before["deployment"]))
        assert again.returncode == 0, again.stderr
        status = running.status()
    assert status["state"] == "running"
    assert running.ask().strip()


def test_an_idle_server_sleeps_and_the_next_request_wakes_it(cpu_image: BuiltImage) -> None:
    options, source = _options(cpu_image)
    port = free_port()
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-idle", ORCHESTRATOR_WAIT_TIMEOUT="300")
    server = Running("sfo-test-idle", port, env, (*options, "--port", str(port), "--idle", "5s"), source)
    up = server.cli("up")
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        assert server.ask(max_tokens=200).strip()
        awake = server.status()
        assert awake["sleeping"] is False
        deadline = time.monotonic() + 60
        status = awake
        while status.get("sleeping") is not True:
            assert time.monotonic() < deadline, status
            time.sleep(1)
            status = server.status()
        time.sleep(2)
        asleep = server.status()
        assert asleep["sleeping"] is True and asleep["idle_seconds"] == 5
        held_awake, held_asleep = int(str(awake["memory_bytes"])), int(str(asleep["memory_bytes"]))
        print(f"container memory awake {held_awake >> 20} MiB, asleep {held_asleep >> 20} MiB")
        assert held_asleep < held_awake * 0.7, "the model's memory is given back"
        assert "asleep" in server.cli("status").stdout
        began = time.monotonic()
        assert "Paris" in server.ask()
        print(f"answered {time.monotonic() - began:.2f} s after waking it")
        assert server.status()["sleeping"] is False
    finally:
        server.cli("down")


def test_bench_serve_measures_the_first_token_after_a_sleep(cpu_image: BuiltImage, tmp_path: Path) -> None:
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-wake", ORCHESTRATOR_WAIT_TIMEOUT="300")
    done = run_cli(
        "bench",
        "serve",
        "--wake",
        *cpu_image.args,
        "--results",
        str(tmp_path),
        "--json",
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    record = json.loads(done.stdout)
    print(
        "wake benchmark:",
        {k: record[k] for k in ("first_token_awake_s", "first_token_after_sleep_s", "memory")},
    )
    assert record["first_token_after_sleep_s"] > 0 and record["first_token_awake_s"] > 0
    assert record["memory"]["asleep"] < record["memory"]["awake"]
    lines = (tmp_path / "bench.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["kind"] == "wake"
