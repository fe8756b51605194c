"""The served model under concurrent load: N clients each send M chat completions (half of them
streamed) to an OpenAI-compatible endpoint, and the run prints failures, latency percentiles, time to
first token and aggregate decode tokens/s. Every loop is bounded in count and time, and the endpoint
must be on this machine (loopback).

    python benchmarks/load.py --url http://127.0.0.1:8080 [--clients 4] [--requests 8] [--max-tokens 32]
    python benchmarks/load.py --serve [--clients 1,4]     # start the cpu demo server, compare 1 and 4
    python benchmarks/load.py --smoke                     # --serve, one client, one short request

With --serve the demo model is served by `orchestrator up` under a compose project of its own, the
load runs at each client count side by side, and the ratio of aggregate tokens/s is printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROMPTS = (
    "Name three colours.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Count from one to five.",
)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    first_token_s: float | None
    tokens: int
    error: str | None = None


@dataclass
class LoadResult:
    clients: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def percentile(self, p: float) -> float:
        times = sorted(o.seconds for o in self.outcomes if o.ok)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, round(p / 100 * (len(times) - 1)))]

    @property
    def tokens_per_second(self) -> float:
        return sum(o.tokens for o in self.outcomes if o.ok) / self.wall_s if self.wall_s else 0.0

    def summary(self) -> str:
        ttft = [o.first_token_s for o in self.outcomes if o.ok and o.first_token_s is not None]
        return (
            f"{self.clients} client(s): {len(self.outcomes)} requests, {len(self.failures)} failed, "
            f"p50 {self.percentile(50):.2f} s, p95 {self.percentile(95):.2f} s, "
            f"first token p50 {statistics.median(ttft) if ttft else float('nan'):.2f} s, "
            f"{self.tokens_per_second:.1f} tokens/s aggregate"
        )


def check_local(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        loopback = False
    if not loopback:
        raise SystemExit(f"{url}: load is only ever sent to this machine (loopback), not to {host}")


def _request(
    url: str,
    model: str,
    prompt: str,
    max_tokens: int,
    stream: bool,
    key: str | None,
    trust: ssl.SSLContext | None = None,
) -> Outcome:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
    )
    started = time.monotonic()
    first: float | None = None
    try:
        with urllib.request.urlopen(request, timeout=120, context=trust) as response:
            if not stream:
                data = json.load(response)
                tokens = int(data["usage"]["completion_tokens"])
                return Outcome(True, time.monotonic() - started, None, tokens)
            tokens = 0
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    tokens += 1
                    if first is None:
                        first = time.monotonic() - started
            return Outcome(True, time.monotonic() - started, first, tokens)
    except (OSError, ValueError, KeyError) as exc:
        return Outcome(False, time.monotonic() - started, first, 0, f"{type(exc).__name__}: {exc}")


def run_load(
    url: str,
    model: str,
    *,
    clients: int,
    requests: int,
    max_tokens: int = 32,
    api_key: str | None = None,
    deadline_s: float = 600,
    cacert: Path | None = None,
) -> LoadResult:
    """clients threads, each sending `requests` completions one after another (every other one
    streamed); whatever has not started by the deadline is not sent. cacert: the certificate authority
    an https server's certificate is checked against (up prints it)."""
    check_local(url)
    trust = ssl.create_default_context(cafile=str(cacert)) if cacert else None
    result = LoadResult(clients)
    stop_at = time.monotonic() + deadline_s

    def client(index: int) -> list[Outcome]:
        outcomes = []
        for n in range(requests):
            if time.monotonic() > stop_at:
                break
            prompt = PROMPTS[(index + n) % len(PROMPTS)]
            outcomes.append(
                _request(url, model, prompt, max_tokens, stream=n % 2 == 1, key=api_key, trust=trust)
            )
        return outcomes

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        for outcomes in pool.map(client, range(clients)):
            result.outcomes.extend(outcomes)
    result.wall_s = time.monotonic() - started
    return result


def _serve_demo() -> tuple[str, list[str], dict[str, str]]:
    """The cpu demo server up on a free loopback port: its URL, and the arguments and environment that
    take it down."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.assets import llama_cpp_source
    from tests.integration import cli_env, free_port

    port = free_port()

    env = cli_env(ORCHESTRATOR_PROJECT="sfo-load-benchmark", ORCHESTRATOR_WAIT_TIMEOUT="300")
    args = ["--target", "cpu", "--source", str(llama_cpp_source()), "--bases", "local", "--port", str(port)]
    up = subprocess.run([sys.executable, "-m", "orchestrator", "up", *args], env=env, check=False)
    if up.returncode != 0:
        raise SystemExit("orchestrator up failed; see above")
    return f"http://127.0.0.1:{port}", args, env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--clients", default="4", help="one count, or several to compare: 1,4")
    parser.add_argument("--requests", type=int, default=8, help="per client")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--api-key-file")
    parser.add_argument("--cacert", type=Path, help="an https server's certificate authority (up prints it)")
    parser.add_argument("--serve", action="store_true", help="serve the cpu demo model for the run")
    parser.add_argument(
        "--smoke", action="store_true", help="--serve, one client, one 4-token request: the script works"
    )
    opts = parser.parse_args()
    if opts.smoke:
        opts.serve, opts.clients, opts.requests, opts.max_tokens = True, "1", 1, 4
        opts.model = "smollm2-135m-instruct"  # what --serve serves
    key = Path(opts.api_key_file).read_text().strip() if opts.api_key_file else None
    counts = [int(c) for c in opts.clients.split(",")]
    served = None
    url = opts.url
    if opts.serve:
        url, args, env = _serve_demo()
        served = (args, env)
    try:
        results = [
            run_load(
                url,
                opts.model,
                clients=c,
                requests=opts.requests,
                max_tokens=opts.max_tokens,
                api_key=key,
                cacert=opts.cacert,
            )
            for c in counts
        ]
    finally:
        if served is not None:
            args, env = served
            subprocess.run([sys.executable, "-m", "orchestrator", "down", *args], env=env, check=False)
    for result in results:
        print(result.summary())
        for failure in result.failures[:3]:
            print(f"  failed: {failure.error}")
    if len(results) > 1 and results[0].tokens_per_second:
        for result in results[1:]:
            ratio = result.tokens_per_second / results[0].tokens_per_second
            print(f"aggregate tokens/s, {result.clients} clients / {results[0].clients}: {ratio:.2f}")
    raise SystemExit(1 if any(r.failures for r in results) else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
