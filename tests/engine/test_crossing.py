"""Promises that hold where two features meet, on the cpu image for real: nothing reaches llama-server but
its proxy; a page of another site (headless Chromium, served from another origin on 127.0.0.1) cannot make
the model do anything; a rotated key takes effect at the next request and rollback brings the old one
back; and neither service's log holds the key or a prompt, a 502 while llama-server is down included."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import BuiltImage, cli_env, container_id, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MARK = "zebra-crossing-7d1f"


@dataclass(frozen=True)
class Served:
    project: str
    port: int
    env: dict[str, str]
    args: tuple[str, ...]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        method = "POST" if body is not None else "GET"
        request = urllib.request.Request(self.root + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def logs(self, service: str = "llama-server") -> str:
        done = docker("logs", container_id(self.project, service))
        return done.stdout + done.stderr


def _chat(prompt: str, tokens: int = 4) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": tokens}).encode()


@pytest.fixture(scope="module")
def open_server(cpu_image: BuiltImage) -> Iterator[Served]:
    """On loopback with no key, as the README's first command serves it: what a foreign page would hit."""
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-crossing", ORCHESTRATOR_WAIT_TIMEOUT="180")
    port = free_port()
    args = (*cpu_image.args, "--port", str(port))
    up = run_cli("up", *args, env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield Served("sfo-test-crossing", port, env, args)
    finally:
        run_cli("down", *args, env=env)


def test_nothing_reaches_llama_server_but_its_proxy(open_server: Served) -> None:
    server = container_id(open_server.project)
    inspected = json.loads(docker("inspect", server).stdout)[0]
    assert inspected["HostConfig"]["NetworkMode"] == "none"
    assert list(inspected["NetworkSettings"]["Networks"]) in ([], ["none"])
    assert not inspected["NetworkSettings"]["Ports"]
    # Inside its own network namespace nothing listens on TCP at all (state 0A: LISTEN).
    tables = docker("exec", server, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout.splitlines()
    listening = [line for line in tables if line.split()[3:4] == ["0A"]]
    assert tables and not listening, listening
    # The proxy's container is the only one with the socket; through it the server answers.
    assert open_server.request("/health")[0] == 200


def _generations(served: Served) -> int:
    """Generations llama-server has begun: it logs each task it processes (it logs no request line at the
    pin: its request logger is turned off in tools/server/server-http.cpp)."""
    return sum("processing task" in line for line in served.logs().splitlines())


@pytest.fixture
def foreign_page(tmp_path: Path, open_server: Served) -> Iterator[str]:
    """A page of another origin (another port of 127.0.0.1) that tries what any site could: a text/plain
    POST and no-cors fetches to the model, and a form posted in a hidden frame."""
    target = open_server.root
    page = f"""<!doctype html><html><body>
<iframe name="sink" style="display:none"></iframe>
<a id="go" href="{target}/?q={MARK}-linked">the model's page</a>
<form id="f" method="POST" action="{target}/v1/chat/completions" target="sink" enctype="text/plain">
<input name='{{"messages":[{{"role":"user","content":"{MARK}"}}],"max_tokens":4,"x":"' value='"}}'>
</form>
<script>
const body = JSON.stringify({{messages: [{{role: "user", content: "{MARK}"}}], max_tokens: 4}});
Promise.allSettled([
  fetch("{target}/v1/chat/completions", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{target}/slots/0?action=erase", {{method: "POST", mode: "no-cors"}}),
  fetch("{target}/v1/chat/completions", {{method: "POST", headers: {{"Content-Type": "text/plain"}}, body}}),
]).then(() => {{ document.getElementById("f").submit(); setTimeout(() => document.title = "sent", 1500); }});
</script></body></html>"""
    (tmp_path / "index.html").write_text(page)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *_args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver (Debian)")
def test_a_page_of_another_site_cannot_make_the_model_do_anything(
    open_server: Served, foreign_page: str
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # The control: the same text/plain POST without an Origin (curl, an SDK) reaches llama-server.
    before = _generations(open_server)
    plain = {"Content-Type": "text/plain"}
    assert open_server.request("/v1/chat/completions", body=_chat("hello"), headers=plain)[0] == 200
    assert _generations(open_server) == before + 1
    before += 1

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        browser.get(foreign_page)
        deadline = time.monotonic() + 30
        while browser.title != "sent":
            assert time.monotonic() < deadline, "the page never sent its requests"
            time.sleep(0.5)
        time.sleep(2)
        # A link to the server's page with a prompt in it (the page sends `?q=` on load): refused too.
        from selenium.webdriver.common.by import By

        browser.find_element(By.ID, "go").click()
        time.sleep(2)
    finally:
        browser.quit()
    # The proxy saw each of them and refused them; llama-server saw none.
    refused = [
        json.loads(line)
        for line in open_server.logs("proxy").splitlines()
        if line.startswith("{") and '"status":403' in line.replace(" ", "")
    ]
    paths = [entry["request"]["uri"] for entry in refused]
    assert paths.count("/v1/chat/completions") >= 3 and "/slots/0?action=erase" in paths, paths
    assert f"/?q={MARK}-linked" in paths, "the followed link was refused too"
    assert _generations(open_server) == before
    assert MARK not in open_server.logs()


@pytest.fixture(scope="module")
def keyed_server(cpu_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("first", "second"):
        (folder / name).write_text(f"sk-{name}-crossing-key\n")
        (folder / name).chmod(0o600)
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-keyed", ORCHESTRATOR_WAIT_TIMEOUT="180")
    port = free_port()
    args = (*cpu_image.args, "--port", str(port))
    up = run_cli("up", *args, "--api-key-file", str(folder / "first"), env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield Served("sfo-test-keyed", port, {**env, "KEYS": str(folder)}, args)
    finally:
        run_cli("down", *args, env=env)


def _with(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def test_a_rotated_key_takes_effect_at_once_and_rollback_brings_the_old_one_back(
    keyed_server: Served,
) -> None:
    keys = Path(keyed_server.env["KEYS"])
    first, second = "sk-first-crossing-key", "sk-second-crossing-key"
    assert keyed_server.request("/v1/models", headers=_with(first))[0] == 200
    up = run_cli("up", *keyed_server.args, "--api-key-file", str(keys / "second"), env=keyed_server.env)
    assert up.returncode == 0, up.stderr + up.stdout
    assert keyed_server.request("/v1/models", headers=_with(first))[0] == 401
    assert keyed_server.request("/v1/models", headers=_with(second))[0] == 200
    history = json.loads(run_cli("history", "--json", *keyed_server.args, env=keyed_server.env).stdout)
    assert len(history["deployments"]) >= 2
    back = run_cli("rollback", *keyed_server.args, env=keyed_server.env)
    assert back.returncode == 0, back.stderr + back.stdout
    assert keyed_server.request("/v1/models", headers=_with(first))[0] == 200
    assert keyed_server.request("/v1/models", headers=_with(second))[0] == 401


def test_no_log_holds_a_key_or_a_prompt_even_through_a_502(keyed_server: Served) -> None:
    key = "sk-first-crossing-key"
    spoken, lost = f"{MARK}-answered", f"{MARK}-while-down"
    # An answered request, the key as the anthropic client sends it.
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    assert keyed_server.request("/v1/chat/completions", body=_chat(spoken), headers=headers)[0] == 200
    # llama-server stopped (not restarted by its policy): the proxy tries for a while, then answers 502.
    server = container_id(keyed_server.project)
    assert docker("stop", server).returncode == 0
    try:
        status, _text = keyed_server.request("/v1/chat/completions", body=_chat(lost), headers=headers)
        assert status == 502
    finally:
        assert docker("start", server).returncode == 0
    deadline = time.monotonic() + 120
    while keyed_server.request("/health")[0] != 200:
        assert time.monotonic() < deadline, "llama-server did not come back"
        time.sleep(1)
    proxy_log, server_log = keyed_server.logs("proxy"), keyed_server.logs()
    assert '"status":502' in proxy_log.replace(" ", ""), "the 502 went through the proxy's logs"
    for log in (proxy_log, server_log):
        assert key not in log and spoken not in log and lost not in log
    # What the device check reads is still there.
    assert "model buffer size" in server_log


def test_the_engine_names_the_model_a_running_server_maps(open_server: Served) -> None:
    """What `model rm` asks before deleting: the real engine's running containers, through their mounts."""
    from orchestrator.executors.docker import DockerEngine

    server = json.loads(docker("inspect", container_id(open_server.project)).stdout)[0]
    argv = server["Config"]["Cmd"]
    inside = argv[argv.index("-m") + 1]
    mount = next(m for m in server["Mounts"] if inside.startswith(m["Destination"].rstrip("/") + "/"))
    on_host = Path(mount["Source"]) / inside[len(mount["Destination"].rstrip("/")) + 1 :]
    used = DockerEngine().files_in_use()
    assert used.get(on_host) == server["Name"].lstrip("/")
