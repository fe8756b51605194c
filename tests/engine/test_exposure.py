"""The server as other machines and coding agents reach it, for real: the cpu image's proxy over TLS
(tls on, on loopback: tests talk to 127.0.0.1 only) with a certificate from the data directory's own
authority, an API key, the official openai and anthropic clients in both APIs, the routes that need
the key, a foreign Host refused, CORS for the allowed origin only; and the Step-3.5-Flash chat template
from the pinned tree rendering tools, a tool result and reasoning."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import BuiltImage, cli_env, container_id, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

KEY = "sk-exposure-test-4f9c2e"
ALLOWED = "http://127.0.0.1:3999"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Secured:
    port: int
    up: str
    ca: Path
    key: Path
    env: dict[str, str]
    args: tuple[str, ...]

    @property
    def root(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], str]:
        context = ssl.create_default_context(cafile=str(self.ca))
        request = urllib.request.Request(self.root + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60, context=context) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture(scope="module")
def secured(cpu_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("exposure")
    key = folder / "api-key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    env = cli_env(ORCHESTRATOR_PROJECT="sfo-test-tls", ORCHESTRATOR_WAIT_TIMEOUT="180")
    data = Path(env["ORCHESTRATOR_DATA_DIR"])
    port = free_port()
    args = (
        *cpu_image.args,
        "--port", str(port), "--tls", "on", "--api-key-file", str(key), "--cors", ALLOWED,
    )  # fmt: skip
    up = run_cli("up", *args, env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield Secured(port, up.stdout, data / "tls" / "ca.crt", key, env, args)
    finally:
        run_cli("down", *args, env=env)


def test_up_says_how_to_reach_it_over_tls(secured: Secured) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    out = " ".join(secured.up.split())
    assert f"https://127.0.0.1:{secured.port}/v1" in out
    ca = x509.load_pem_x509_certificate(secured.ca.read_bytes())
    assert ca.fingerprint(hashes.SHA256()).hex(":").upper() in out, "the CA file's fingerprint"
    assert str(secured.ca) in out and str(secured.key) in out
    for words in (
        "OpenAI base URL",
        "Anthropic base URL",
        "OpenAI(base_url=",
        "Anthropic(base_url=",
        "--cacert",
    ):
        assert words in out
    assert KEY not in secured.up
    assert (secured.ca.parent / "ca.key").stat().st_mode & 0o077 == 0
    # Neither the compose file nor the plan nor status carries the key.
    compose = Path(secured.env["ORCHESTRATOR_DATA_DIR"]) / "compose" / "sfo-test-tls.yaml"
    assert KEY not in compose.read_text()
    for command in (("plan", "--json"), ("status", "--json")):
        done = run_cli(*command, *secured.args, env=secured.env)
        assert KEY not in done.stdout + done.stderr
    status = json.loads(run_cli("status", "--json", *secured.args, env=secured.env).stdout)
    assert status["state"] == "running" and status["endpoint"].startswith("https://")
    assert status["tokens_per_second"], "status reads /metrics over TLS with the key"


def test_plain_http_and_an_unknown_authority_are_refused(secured: Secured) -> None:
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{secured.port}/health", timeout=10)
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(f"{secured.root}/health", timeout=10, context=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_every_route_but_health_needs_the_key(secured: Secured) -> None:
    assert secured.request("/health")[0] == 200 and secured.request("/v1/health")[0] == 200
    chat = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).encode()
    message = json.dumps(
        {"model": "x", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    ).encode()
    completion = json.dumps({"prompt": "Hi", "max_tokens": 4}).encode()
    routes = [
        ("/v1/chat/completions", "POST", chat),
        ("/v1/completions", "POST", completion),
        ("/v1/messages", "POST", message),
        ("/v1/models", "GET", None),
        ("/metrics", "GET", None),
        ("/slots", "GET", None),
        ("/props", "GET", None),
    ]
    json_type = {"Content-Type": "application/json"}
    for path, method, body in routes:
        status, _headers, _text = secured.request(path, method=method, body=body, headers=json_type)
        assert status == 401, (path, status)
        with_key = {**json_type, "Authorization": f"Bearer {KEY}"}
        status, _headers, text = secured.request(path, method=method, body=body, headers=with_key)
        assert status == 200, (path, status, text[:200])
    # llama-server takes the key as x-api-key too (what the anthropic client sends).
    assert secured.request("/v1/models", headers={"X-Api-Key": KEY})[0] == 200


def test_a_foreign_host_is_refused_and_other_sites_get_no_cors(secured: Secured) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    # The DNS-rebinding pattern: a page whose own name points at this machine. A text/plain POST skips
    # the browser's preflight, so the Host check is what keeps it out.
    rebind = {"Host": f"rebind.attacker.example:{secured.port}", "Content-Type": "text/plain"}
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).encode()
    for path, method, data in (("/v1/models", "GET", None), ("/v1/chat/completions", "POST", body)):
        status, _headers, text = secured.request(path, method=method, body=data, headers={**auth, **rebind})
        assert status == 421 and "host name" in text, (path, status, text)
    evil = {"Origin": "https://evil.example"}
    # Another site's page is refused whatever it sends, its key included: 403, no CORS headers.
    status, headers, _text = secured.request("/v1/models", headers={**auth, **evil})
    assert status == 403 and not any(h.lower().startswith("access-control") for h in headers)
    status, headers, _text = secured.request(
        "/v1/chat/completions",
        method="POST",
        body=body,
        headers={**auth, **evil, "Content-Type": "text/plain"},
    )
    assert status == 403
    preflight = {
        **evil,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    status, headers, _text = secured.request("/v1/chat/completions", method="OPTIONS", headers=preflight)
    assert status == 403 and not any(h.lower().startswith("access-control") for h in headers)
    allowed = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    status, headers, _text = secured.request("/v1/chat/completions", method="OPTIONS", headers=allowed)
    assert status == 204 and headers.get("Access-Control-Allow-Origin") == ALLOWED
    assert "authorization" in headers.get("Access-Control-Allow-Headers", "").lower()
    status, headers, _text = secured.request("/v1/models", headers={**auth, "Origin": ALLOWED})
    assert status == 200 and headers.get("Access-Control-Allow-Origin") == ALLOWED
    assert headers.get("Access-Control-Allow-Credentials") is None, (
        "llama-server's own CORS headers are dropped"
    )
    # The proxy logs each request, and never the key.
    logs = docker("logs", container_id("sfo-test-tls", "proxy")).stderr
    assert "/v1/models" in logs and KEY not in logs
    assert KEY not in docker("logs", container_id("sfo-test-tls")).stderr


def test_openai_client_chats_streams_lists_and_hands_a_tool_result_back(secured: Secured) -> None:
    from openai import DefaultHttpxClient, OpenAI

    # As up prints it: the SDK's own HTTP client, trusting the data directory's authority.
    client = OpenAI(
        base_url=f"{secured.root}/v1",
        api_key=KEY,
        http_client=DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(secured.ca))),
    )
    question = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    answer = client.chat.completions.create(model="x", messages=question, max_tokens=32, temperature=0)  # type: ignore[arg-type]
    assert "Paris" in (answer.choices[0].message.content or "")
    chunks = client.chat.completions.create(
        model="x",
        messages=question,
        max_tokens=32,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in streamed
    assert [m.id for m in client.models.list().data]
    # The tool exchange: a tool offered; the call sent as history (a 135M model is not forced to call at
    # the pin, see README); the tool's result sent back and answered.
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 18, "sky": "sunny"}'},
    ]
    reply = client.chat.completions.create(
        model="x",
        messages=history,
        tools=[TOOL],
        max_tokens=48,
        temperature=0,  # type: ignore[arg-type]
    )
    choice = reply.choices[0]
    said = (choice.message.content or "") + json.dumps(
        [t.model_dump() for t in choice.message.tool_calls or []]
    )
    assert said.strip(), "the tool's result was answered"
    print("openai, after the tool result:", choice.finish_reason, said[:200])


def test_anthropic_client_messages_streams_lists_and_hands_a_tool_result_back(secured: Secured) -> None:
    import anthropic

    trusting = anthropic.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(secured.ca)))
    client = anthropic.Anthropic(base_url=secured.root, api_key=KEY, http_client=trusting)
    question = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    message = client.messages.create(
        model="x", max_tokens=32, messages=question, extra_body={"temperature": 0}
    )  # type: ignore[arg-type]
    text = "".join(block.text for block in message.content if block.type == "text")
    assert "Paris" in text
    with client.messages.stream(
        model="x", max_tokens=32, messages=question, extra_body={"temperature": 0}
    ) as stream:  # type: ignore[arg-type]
        streamed = "".join(stream.text_stream)
    assert "Paris" in streamed
    assert [m.id for m in client.models.list().data]
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C and sunny"}],
        },
    ]
    tools = [
        {
            "name": "get_weather",
            "description": "The weather in a city now",
            "input_schema": TOOL["function"]["parameters"],
        }
    ]  # type: ignore[index]
    reply = client.messages.create(
        model="x", max_tokens=48, messages=history, tools=tools, extra_body={"temperature": 0}
    )  # type: ignore[arg-type]
    assert reply.content and reply.stop_reason in ("end_turn", "max_tokens", "tool_use")
    print("anthropic, after the tool result:", reply.stop_reason, reply.content[0])
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=secured.root, api_key="wrong", http_client=trusting).models.list()


# --- the Step-3.5-Flash chat template of the pinned tree ------------------------------------------------


@pytest.fixture(scope="module")
def stepfun_server(cpu_image: BuiltImage) -> Iterator[str]:
    """The image's llama-server with the demo model and the pinned tree's StepFun3.5-Flash.jinja (taken
    from the source at test time, mounted read-only), on a free loopback port."""
    from tests.assets import llama_cpp_source, smollm2_model

    template = llama_cpp_source() / "models" / "templates" / "StepFun3.5-Flash.jinja"
    assert template.is_file()
    model = smollm2_model()
    port = free_port()
    name = f"sfo-test-stepfun-{port}"
    started = docker(
        "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-v", f"{model.parent}:/models:ro", "-v", f"{template.parent}:/templates:ro",
        cpu_image.tag, "llama-server", "--host", "0.0.0.0", "--port", "8080", "-m", f"/models/{model.name}",
        "-c", "4096", "--jinja", "--chat-template-file", "/templates/StepFun3.5-Flash.jinja",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_the_load_benchmark_speaks_tls_with_the_key(secured: Secured) -> None:
    from tests.integration import benchmark_script

    result = benchmark_script("load").run_load(
        secured.root, "x", clients=2, requests=2, max_tokens=8, api_key=KEY, cacert=secured.ca
    )
    assert len(result.outcomes) == 4 and not result.failures, [f.error for f in result.failures]


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return dict(json.loads(response.read()))


def test_stepfun_template_renders_tools_a_tool_result_and_reasoning(stepfun_server: str) -> None:
    messages = [
        {"role": "system", "content": "You help with travel."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "I should look the weather up.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temperature_c": 18}'},
    ]
    prompt = str(_post(stepfun_server + "/apply-template", {"messages": messages, "tools": [TOOL]})["prompt"])
    # The template opens with the model's BOS token (SmolLM2's is <|im_start|> itself).
    assert prompt.removeprefix("<|im_start|>").startswith(
        "<|im_start|>system\nYou help with travel.\n\n# Tools\n"
    )
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt
    assert (
        "<|im_start|>assistant\n<think>\nI should look the weather up.\n</think>\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
        "<|im_end|>\n"
    ) in prompt
    assert (
        '<|im_start|>tool_response\n<tool_response>{"temperature_c": 18}</tool_response><|im_end|>\n'
        in prompt
    )
    assert prompt.endswith("<|im_start|>assistant\n<think>\n"), "the generation prompt opens the reasoning"


def test_stepfun_template_returns_reasoning_apart_from_content(stepfun_server: str) -> None:
    answer = _post(
        stepfun_server + "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 48, "temperature": 0},
    )
    message = answer["choices"][0]["message"]  # type: ignore[index]
    assert message.get("reasoning_content"), "what follows the template's <think> comes back as reasoning"
    assert "<think>" not in (message.get("content") or "")


def test_stepfun_forced_tool_call_at_the_pin(stepfun_server: str) -> None:
    """What `tool_choice: required` does with this template at the pin (the documentation on tool calls): its grammar
    lets the model write any text before <tool_call> and only forbids ending without one, so the demo
    model runs to its token cap: no parsed call, and no answer that ends without one."""
    answer = _post(
        stepfun_server + "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [TOOL],
            "tool_choice": "required",
            "max_tokens": 64,
            "temperature": 0,
        },
    )
    choice = answer["choices"][0]  # type: ignore[index]
    # At temperature 0 the demo model's answer is fixed: it never writes the call, and the grammar keeps
    # it from ending, so it stops at its cap. Should the pin start to parse a call, this fails and the
    # documentation on tool calls must say so.
    assert not choice["message"].get("tool_calls"), choice
    assert choice["finish_reason"] == "length", choice
