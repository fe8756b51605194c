"""Images for real, on the cpu image (and the same plan built natively, --native, where Caddy is on the
host): the tiny step35 model served with its tiny step3vl projector (tests/tiny_gguf.py, random
weights) through `orchestrator up`, behind the proxy with a key; a picture
sent through the official openai client (an image_url data URL), the official anthropic client (an image
block) and the web page's upload in headless Chromium reaches the model: llama-server's log shows it
encoded and decoded into the model (the answer's text need not describe it; the weights are random).
The same model served without a projector answers an image with an error and keeps serving."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import BuiltImage, cli_env, container_id, docker, free_port, needs_docker, run_cli
from tests.tiny_gguf import write_tiny_step3vl_projector, write_tiny_step35

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MODEL = "tiny-step35"
# llama-server's log at the pin for each picture it takes in: the server encodes the batch of image
# chunks (server-context.cpp, trace level, shown at -lv 4), then mtmd-helper.cpp decodes the embeddings
# into the model.
ENCODED = "encoding mtmd batch from idx"
DECODED = "image decoded (batch 1/1)"


def png(width: int = 64, height: int = 48) -> bytes:
    """A small RGB PNG (a red square on blue), written by hand: no imaging library needed."""
    rows = b""
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            inside = width // 4 <= x < 3 * width // 4 and height // 4 <= y < 3 * height // 4
            row += bytes((220, 30, 30) if inside else (30, 60, 200))
        rows += bytes(row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Served:
    port: int
    key: str
    up: str
    args: tuple[str, ...]
    env: dict[str, str]

    @property
    def native(self) -> bool:
        return "--native" in self.args

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """llama-server's whole log as `orchestrator logs` shows it (the container's, or the native one's)."""
        done = run_cli("logs", *self.args, "--tail", "1000000", env=self.env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def running(self) -> bool:
        return run_cli("status", *self.args, "--json", env=self.env, timeout=120).returncode == 0

    def seen(self, marker: str) -> int:
        return self.log().count(marker)


@pytest.fixture(scope="module", params=["image", "native"])
def runtime(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """How the server is built: the cpu image, or on the host (--native; needs Caddy there)."""
    if request.param == "image":
        return tuple(request.getfixturevalue("cpu_image").args)
    if shutil.which("caddy") is None:
        pytest.skip("--native serves behind Caddy on the host: apt-get install caddy")
    from tests.assets import llama_cpp_source

    return ("--target", "cpu", "--native", "--source", str(llama_cpp_source()))


def _serve(runtime: tuple[str, ...], tmp_path: Path, project: str, *extra: str) -> Iterator[Served]:
    folder = tmp_path / "models"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    model = write_tiny_step35(folder / f"{MODEL}.gguf", "no-heads", image_tokens=True)
    write_tiny_step3vl_projector(folder / "mmproj-tiny-step35.gguf")
    for item in folder.iterdir():
        item.chmod(0o644)
    key_file = tmp_path / "key"
    key_file.write_text("vision-test-key\n")
    key_file.chmod(0o600)
    port = free_port()
    env = cli_env(ORCHESTRATOR_WAIT_TIMEOUT="180", ORCHESTRATOR_PROJECT=project)
    args = (*runtime, "--model", str(model), "--port", str(port), "--api-key-file", str(key_file), *extra)
    up = run_cli("up", *args, env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield Served(port, "vision-test-key", up.stdout, args, env)
    finally:
        run_cli("down", *args, env=env)


@pytest.fixture(scope="module")
def seeing(runtime: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(runtime, tmp_path_factory.mktemp("seeing"), "sfo-test-vision")


def _wait_for(served: Served, marker: str, before: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while served.seen(marker) <= before:
        assert time.monotonic() < deadline, f"no {marker!r} in the server's log:\n" + served.log()[-3000:]
        time.sleep(0.5)


def test_up_says_images_are_accepted_and_the_server_loaded_the_projector(seeing: Served) -> None:
    text = " ".join(seeing.up.split())
    assert (
        "images accepted (OpenAI image_url, Anthropic image blocks, the page's upload): step3vl projector"
        in text
    )
    log = seeing.log()
    # clip.cpp's loader read the tiny projector (mtmd checked its output size against the model's).
    assert "load_hparams: projector:          step3vl" in log
    assert "loaded multimodal model, '" in log and "mmproj-tiny-step35.gguf'" in log


def test_an_image_through_the_openai_client_reaches_the_model(seeing: Served) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{seeing.url}/v1", api_key=seeing.key)
    before = seeing.seen(DECODED), seeing.seen(ENCODED)
    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        max_tokens=4,
        temperature=0,
    )
    assert reply.choices[0].message.content is not None
    _wait_for(seeing, ENCODED, before[1])
    _wait_for(seeing, DECODED, before[0])
    # The image's tokens count in the prompt: more than the words alone.
    words = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is in this picture?"}], max_tokens=4
    )
    assert reply.usage is not None and words.usage is not None
    assert reply.usage.prompt_tokens > words.usage.prompt_tokens


def test_an_image_through_the_anthropic_client_reaches_the_model(seeing: Served) -> None:
    from anthropic import Anthropic

    client = Anthropic(base_url=seeing.url, api_key=seeing.key)
    before = seeing.seen(DECODED)
    reply = client.messages.create(
        model=MODEL,
        max_tokens=4,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png(40, 40)).decode(),
                        },
                    },
                    {"type": "text", "text": "Describe it."},
                ],
            }
        ],
    )
    assert reply.content
    _wait_for(seeing, DECODED, before)


def test_the_key_rule_applies_to_images_too(seeing: Served) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="wrong")
    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    before = seeing.seen(DECODED)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            max_tokens=4,
        )
    assert seeing.seen(DECODED) == before


def test_a_body_past_the_proxy_limit_is_refused(seeing: Served) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key=seeing.key, max_retries=0)
    huge = "data:image/png;base64," + "A" * (33 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": huge}}]}],
            max_tokens=4,
        )
    assert refused.value.status_code == 413


def test_a_chunked_body_past_the_limit_is_cut_by_the_proxy(seeing: Served) -> None:
    """A body sent in chunks says no length, so the 413 route cannot see it coming: the proxy's body
    limit cuts it, and llama-server never answers it; the server keeps serving."""
    import http.client

    import openai

    def body() -> Iterator[bytes]:
        yield (
            b'{"model":"' + MODEL.encode() + b'","max_tokens":4,"messages":[{"role":"user","content":[{"type"'
        )
        yield b':"image_url","image_url":{"url":"data:image/png;base64,'
        for _ in range(34):
            yield b"A" * (1024 * 1024)
        yield b'"}}]}]}'

    connection = http.client.HTTPConnection("127.0.0.1", seeing.port, timeout=120)
    headers = {"Authorization": f"Bearer {seeing.key}", "Content-Type": "application/json"}
    try:
        connection.request("POST", "/v1/chat/completions", body=body(), headers=headers, encode_chunked=True)
        status = connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = None  # the proxy stopped reading: cut before the end
    finally:
        connection.close()
    assert status in (None, 413, 502), f"a chunked body over the limit was answered {status}"
    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key=seeing.key, max_retries=0)
    words = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert words.choices[0].message.content is not None


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver (Debian) needed"
)
def test_an_image_uploaded_on_the_page_reaches_the_model(seeing: Served, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if seeing.native:
        pytest.skip("drives the image's page (llama.cpp's mid-2025 web UI); a native build serves its own")
    picture = tmp_path / "square.png"
    picture.write_bytes(png())
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    before = seeing.seen(DECODED)
    try:
        browser.get(seeing.url + "/")
        # The page keeps the key in its settings (localStorage), as a person types it there once.
        browser.execute_script(
            "localStorage.setItem('config', JSON.stringify("
            "Object.assign(JSON.parse(localStorage.getItem('config') || '{}'), {apiKey: arguments[0]})))",
            seeing.key,
        )
        browser.get(seeing.url + "/")
        # The page asks /props with the key and, told the server sees, shows it and takes images.
        deadline = time.monotonic() + 30
        while "Supported modalities: vision" not in browser.find_element(By.TAG_NAME, "body").text:
            assert time.monotonic() < deadline, "the page never said it takes images (the key not taken?)"
            time.sleep(0.5)
        # The page's upload (a hidden <input type=file id=file-upload> behind its paper-clip button).
        browser.find_element(By.ID, "file-upload").send_keys(str(picture))
        time.sleep(1)  # the page reads the file into the message's attachments
        box = browser.find_element(By.ID, "msg-input")
        box.send_keys("What is in this picture?")
        box.send_keys(Keys.ENTER)
        _wait_for(seeing, DECODED, before, timeout=60)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "webui-image-upload.png"))
    finally:
        browser.quit()


def test_without_a_projector_an_image_is_refused_and_the_server_keeps_serving(
    runtime: tuple[str, ...], tmp_path: Path
) -> None:
    import openai

    for served in _serve(runtime, tmp_path, "sfo-test-vision-none", "--mmproj", "none"):
        assert "images not accepted: --mmproj none (text only)" in " ".join(served.up.split())
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=served.key, max_retries=0)
        url = "data:image/png;base64," + base64.b64encode(png()).decode()
        # llama-server answers 500 with its reason at the pin (seen), not a 4xx.
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
                max_tokens=4,
            )
        # llama-server's own words at the pin (server-common.cpp).
        assert "image input is not supported" in str(refused.value)
        words = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert words.choices[0].message.content is not None
        assert served.running()


def test_a_projector_from_another_folder_is_mounted_alone_and_named_in_use(
    cpu_image: BuiltImage, tmp_path: Path
) -> None:
    """--mmproj of a file elsewhere: the container gets that file alone (not the folder it is in, which
    could hold the owner's keys), the server loads it, and `model rm` would see it in use."""
    from orchestrator.executors.docker import DockerEngine

    elsewhere = tmp_path / "vision"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    projector = write_tiny_step3vl_projector(elsewhere / "eyes.gguf")
    projector.chmod(0o644)
    (elsewhere / "secret.txt").write_text("not for the container")
    project = "sfo-test-vision-apart"
    for served in _serve(tuple(cpu_image.args), tmp_path, project, "--mmproj", str(projector)):
        assert "loaded multimodal model, '/mmproj/eyes.gguf'" in served.log()
        server = json.loads(docker("inspect", container_id(project)).stdout)[0]
        mounts = {m["Source"]: m["Destination"] for m in server["Mounts"]}
        assert mounts.get(str(projector)) == "/mmproj/eyes.gguf" and str(elsewhere) not in mounts
        listed = docker("exec", container_id(project), "ls", "/mmproj")
        assert listed.stdout.split() == ["eyes.gguf"]
        assert DockerEngine().files_in_use().get(projector) == server["Name"].lstrip("/")
