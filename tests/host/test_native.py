"""The native path (the Mac's, and --native on Linux): the scripts are shellcheck-clean, the wired-limit hook
talks to a stand-in `sysctl`, and on this machine the same scripts build llama.cpp with CPU flags in place
of the Metal ones and serve a chat completion until `down`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.core.catalogue import MAC_WIRED_LIMIT_MB
from orchestrator.core.plan.host_steps import host_steps
from orchestrator.executors.hooks import run_host_steps
from tests.conftest import host_facts
from tests.integration import cli_env, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [
    *sorted((ROOT / "scripts" / "macos-native").glob("*.sh")),
    ROOT / "images" / "common" / "build-llama.sh",
    ROOT / "scripts" / "gpu-check.sh",
]


def test_scripts_are_shellcheck_clean() -> None:
    exe = shutil.which("shellcheck")
    assert exe, "scripts/test.sh installs shellcheck"
    # From the repository root, where the scripts' `source=` directives point.
    done = subprocess.run(
        [exe, "-x", *map(str, SCRIPTS)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout


# --- the wired-limit hook against a stand-in sysctl ------------------------------------------------------


@pytest.fixture
def stand_in_sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sysctl` and `sudo` on PATH: sysctl reads and writes iogpu.wired_limit_mb in a file."""
    state = tmp_path / "wired_limit_mb"
    state.write_text("0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sysctl").write_text(
        "#!/bin/sh\n"
        f'state="{state}"\n'
        'if [ "$1" = "-n" ] && [ "$2" = "iogpu.wired_limit_mb" ]; then cat "$state"; exit 0; fi\n'
        'case "$1" in iogpu.wired_limit_mb=*) old=$(cat "$state"); echo "${1#*=}" > "$state";'
        ' echo "iogpu.wired_limit_mb: $old -> ${1#*=}"; exit 0;; esac\n'
        'echo "sysctl: unknown oid $1" >&2; exit 1\n'
    )
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for tool in ("sysctl", "sudo"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


def _mac_steps() -> tuple:  # type: ignore[type-arg]
    from orchestrator.core.catalogue import CATALOGUE

    profile = CATALOGUE["mac-studio"].profile("long-context")
    return host_steps(profile.hooks, host_facts("mac-studio"))


def test_wired_limit_is_proposed_with_the_exact_command_and_raised_on_yes(stand_in_sysctl: Path) -> None:
    asked: list[str] = []
    results = run_host_steps(_mac_steps(), decisions={}, ask=lambda q: asked.append(q) or True)
    assert len(asked) == 1
    assert f"sudo sysctl iogpu.wired_limit_mb={MAC_WIRED_LIMIT_MB}" in asked[0] and "reboot" in asked[0]
    assert results[0].ran and stand_in_sysctl.read_text().strip() == str(MAC_WIRED_LIMIT_MB)


def test_refusing_keeps_the_limit_and_names_the_alternative(stand_in_sysctl: Path) -> None:
    results = run_host_steps(_mac_steps(), decisions={}, ask=lambda _q: False)
    assert not results[0].ran and "as you said" in results[0].message
    assert "-ctk q8_0 -ctv q8_0" in results[0].message and "76K" in results[0].message
    assert stand_in_sysctl.read_text().strip() == "0"
    # No terminal: nothing is raised, the command to run is shown.
    quiet = run_host_steps(_mac_steps(), decisions={}, ask=None)
    assert not quiet[0].ran and "sudo sysctl iogpu.wired_limit_mb=122880" in quiet[0].message
    assert stand_in_sysctl.read_text().strip() == "0"


def test_a_limit_already_high_enough_is_kept_without_asking(stand_in_sysctl: Path) -> None:
    stand_in_sysctl.write_text("126976\n")

    def never(_q: str) -> bool:
        raise AssertionError("asked although nothing needs changing")

    results = run_host_steps(_mac_steps(), decisions={}, ask=never)
    assert not results[0].ran and "already" in results[0].message


# --- --native end to end on this machine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def native_args() -> Iterator[tuple[str, ...]]:
    from tests.assets import llama_cpp_source

    args = ("--target", "cpu", "--native", "--source", str(llama_cpp_source()))
    yield args
    run_cli("down", *args, env=cli_env(), timeout=120)


def test_preflight_names_what_is_missing(tmp_path: Path) -> None:
    tree = tmp_path / "llama.cpp"
    tree.mkdir()
    (tree / "CMakeLists.txt").write_text("project(x)\n")
    (tree / "ggml").mkdir()
    python_only = tmp_path / "bin"
    python_only.mkdir()
    env = cli_env(PATH=str(python_only))
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "build", "--target", "cpu", "--native",
         "--source", str(tree)],
        capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)}, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "cmake is not installed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_native_build_serves_a_chat_completion_until_down(native_args: tuple[str, ...]) -> None:
    from openai import OpenAI

    env = cli_env()
    built = run_cli("build", *native_args, env=env)
    assert built.returncode == 0, built.stderr + built.stdout
    again = run_cli("build", *native_args, env=env)
    assert again.returncode == 0 and "up to date" in again.stdout

    port = str(free_port())
    up = run_cli("up", *native_args, "--port", port, env=env, timeout=900)
    assert up.returncode == 0, up.stderr + up.stdout
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert reply.choices[0].message.content

    status = run_cli("status", *native_args, "--port", port, "--json", env=env)
    state = json.loads(status.stdout)
    assert status.returncode == 0 and state["state"] == "running" and state["health"] == "ready"
    pid = state["pid"]
    # The same proxy as a container's stands in front: llama-server has no TCP port of its own, a
    # rebound Host name gets 421, another site's page 403.
    import psutil

    assert not [c for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert _status(port, {"Host": f"rebind.attacker.example:{port}"}) == 421
    assert _status(port, {"Origin": "http://127.0.0.1:1"}, post=True) == 403
    assert _status(port, {"Origin": f"http://127.0.0.1:{port}"}) == 200
    logs = run_cli("logs", *native_args, "--port", port, "--tail", "50", env=env)
    assert logs.returncode == 0 and "llama" in logs.stdout
    # The same plan again keeps the running server.
    up_again = run_cli("up", *native_args, "--port", port, env=env, timeout=300)
    assert up_again.returncode == 0 and "kept" in up_again.stdout
    assert json.loads(run_cli("status", *native_args, "--port", port, "--json", env=env).stdout)["pid"] == pid

    ran = run_cli("run", *native_args, "--port", port, "The sky is", env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    results = Path(env["ORCHESTRATOR_DATA_DIR"]) / "native-results"
    bench = run_cli(
        "bench", *native_args, "--npp", "0,64", "--ntg", "8", "--results", str(results), env=env, timeout=600
    )
    assert bench.returncode == 0, bench.stderr + bench.stdout
    record = json.loads((results / "bench.jsonl").read_text().splitlines()[-1])
    assert record["complete"] and record["build"]["prefix"] and record["runtime"]["container"] is None
    # The quality tools ship in the native build too: llama-perplexity on the host, over the pinned text.
    evaluated = run_cli(
        "eval",
        *native_args,
        "--port",
        port,
        "--chunks",
        "2",
        "--results",
        str(results),
        "--json",
        env=env,
        timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr + evaluated.stdout
    quality = json.loads(evaluated.stdout)
    assert quality["ppl"][0] > 1 and quality["build"]["image"] is None and quality["chunks"] == 2

    # Reached from other machines: TLS from the data directory's authority and a key, through the same
    # proxy; the key and certificate it reads take effect at once.
    key = Path(env["ORCHESTRATOR_DATA_DIR"]) / "native-key"
    key.write_text("sk-native-key\n")
    key.chmod(0o600)
    secured = run_cli(
        "up", *native_args, "--port", port, "--tls", "on", "--api-key-file", str(key), env=env, timeout=300
    )
    assert secured.returncode == 0, secured.stderr + secured.stdout
    ca = Path(env["ORCHESTRATOR_DATA_DIR"]) / "tls" / "ca.crt"
    assert _status(port, {}, scheme="https", ca=ca) == 401
    assert _status(port, {"Authorization": "Bearer sk-native-key"}, scheme="https", ca=ca) == 200

    down = run_cli("down", *native_args, "--port", port, env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    after = run_cli("status", *native_args, "--port", port, "--json", env=env)
    assert after.returncode == 5 and json.loads(after.stdout)["state"] == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _status(
    port: str, headers: dict[str, str], *, post: bool = False, scheme: str = "http", ca: Path | None = None
) -> int:
    import ssl
    import urllib.error
    import urllib.request

    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
    request = urllib.request.Request(
        f"{scheme}://127.0.0.1:{port}" + ("/v1/chat/completions" if post else "/v1/models"),
        data=body if post else None,
        headers={"Content-Type": "text/plain", **headers},
    )
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
