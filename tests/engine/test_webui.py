"""A person's first look: headless Chromium opens the page the server gives, types a question into the
chat, and sees the model's answer on the page. The page is the one the image carries where llama-server
was built without its own (llama.cpp's built web UI from a pinned older llama-cpp-python sdist, served by
the proxy): on loopback over plain HTTP as the README's first command serves it, and over TLS with the
data directory's own certificate authority (Chromium trusting that certificate's key). Screenshots are
kept in test-artifacts/."""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import BuiltImage, cli_env, free_port, image_labels, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
QUESTION = "What is the capital of France?"


@dataclass(frozen=True)
class Page:
    url: str
    up: str
    # Chromium's --ignore-certificate-errors-spki-list value: the served certificate's key, trusted.
    spki: str | None


@pytest.fixture(params=["http", "https"])
def served_page(request: pytest.FixtureRequest, cpu_image: BuiltImage, tmp_path: Path) -> Iterator[Page]:
    tls = request.param == "https"
    env = cli_env(
        ORCHESTRATOR_PROJECT=f"sfo-test-webui-{request.param}",
        ORCHESTRATOR_MODELS_DIR=str(tmp_path / "models"),
        ORCHESTRATOR_WAIT_TIMEOUT="180",
    )
    port = free_port()
    args = [*cpu_image.args, "--port", str(port), *(["--tls", "on"] if tls else [])]
    up = run_cli("up", *args, env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    spki = None
    if tls:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        server_cert = Path(env["ORCHESTRATOR_DATA_DIR"]) / "tls" / "server.crt"
        leaf = x509.load_pem_x509_certificate(server_cert.read_bytes())
        der = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    try:
        yield Page(f"{'https' if tls else 'http'}://127.0.0.1:{port}/", up.stdout, spki)
    finally:
        run_cli("down", *args, env=env)


def test_the_image_carries_a_page_and_says_which(cpu_image: BuiltImage) -> None:
    label = image_labels(cpu_image.tag)["io.step-flash.webui"]
    # Built here without network to llama.cpp's bundle: the fallback page, by its pinned sdist.
    assert label.startswith(("embedded", "fallback: llama.cpp web UI from the llama-cpp-python 0.3.16 sdist"))


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver (Debian) needed"
)
def test_a_person_chats_in_the_browser(served_page: Page) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    assert served_page.url in " ".join(served_page.up.split()), "up names the page to open"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    if served_page.spki:
        options.add_argument(f"--ignore-certificate-errors-spki-list={served_page.spki}")
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    shot = ARTIFACTS / f"webui-chat-{served_page.url.split(':')[0]}.png"
    try:
        browser.get(served_page.url)
        deadline = time.monotonic() + 30
        while not browser.find_elements(By.TAG_NAME, "textarea"):
            assert time.monotonic() < deadline, "the chat box never appeared"
            time.sleep(0.5)
        box = browser.find_elements(By.TAG_NAME, "textarea")[0]
        box.send_keys(QUESTION)
        box.send_keys(Keys.ENTER)
        answer = ""
        deadline = time.monotonic() + 120
        while len(answer) < 8:
            assert time.monotonic() < deadline, "no answer appeared on the page"
            time.sleep(1)
            text = browser.find_element(By.TAG_NAME, "body").text
            # The question appears twice (sidebar title, the message); the answer comes after the last.
            answer = text.rsplit(QUESTION, 1)[-1].strip() if text.count(QUESTION) >= 2 else ""
        time.sleep(3)  # let the streamed answer finish before the picture
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    assert shot.stat().st_size > 10_000
