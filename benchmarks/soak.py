"""A long day of load, shortened: several clients send a bounded mixed load (streamed and not, short and
long prompts) to a server on this machine for a given time, the server's container is restarted once in
the middle, and the server's memory is sampled throughout. It prints requests ok / failed (failed ones
only counted as the restart's where they were in flight while it restarted), p50 / p95 latency per
quarter of the run, and the server's memory after warm-up and at the end of each of its two runs.

    python benchmarks/soak.py --serve [--minutes 20] [--clients 4]          # the cpu demo server
    python benchmarks/soak.py --url http://127.0.0.1:8080 --container NAME  # a server already up
    python benchmarks/soak.py --smoke   # --serve, 20 seconds, one client, the restart still in the middle

Goals: no failed request outside the restart (the exit code is 1 otherwise); the server's memory at the end of each run within 5% of
where it was once warm.
Loopback only; every loop ends by its deadline.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_benchmark", HERE / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


load = _load_benchmark()

SHORT = ("Name three colours.", "What is the capital of France?", "Count from one to five.")
# About 600 tokens of context: a question over a document, as agents send them.
LONG = (
    "Here are the notes of a lighthouse keeper, one line a day. "
    + " ".join(
        f"Day {n}: the lamp was lit at dusk, the wind came from the west, no ship passed." for n in range(40)
    )
    + " On which day did a ship pass? Answer in one sentence."
)


@dataclass(frozen=True)
class Timed:
    """One request: when it started and ended (seconds since the soak began) and how it went."""

    started: float
    ended: float
    outcome: object  # load.Outcome


@dataclass
class Soak:
    seconds: float
    requests: list[Timed] = field(default_factory=list)
    # (seconds since start, bytes) of the server's own memory.
    memory: list[tuple[float, int]] = field(default_factory=list)
    restart: tuple[float, float] | None = None

    def failed(self) -> tuple[list[Timed], list[Timed]]:
        """Failed requests: those in flight while the server restarted, and all the others."""
        down = self.restart
        bad = [r for r in self.requests if not r.outcome.ok]  # type: ignore[attr-defined]
        during = [r for r in bad if down is not None and r.started <= down[1] and r.ended >= down[0]]
        return during, [r for r in bad if r not in during]

    def quarters(self) -> list[tuple[float, float, int]]:
        """(p50, p95, requests) of the successful requests started in each quarter of the run."""
        rows = []
        for q in range(4):
            low, high = q * self.seconds / 4, (q + 1) * self.seconds / 4
            times = sorted(
                r.ended - r.started
                for r in self.requests
                if r.outcome.ok and low <= r.started < high  # type: ignore[attr-defined]
            )
            if times:
                rows.append(
                    (
                        statistics.median(times),
                        times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                        len(times),
                    )
                )
            else:
                rows.append((float("nan"), float("nan"), 0))
        return rows

    def memory_spans(self, warm_up_s: float) -> list[tuple[str, int, int, float]]:
        """For each run of the server (before the restart, after it): its memory once warm (the first
        sample warm_up_s after it started), its last, and the change."""
        spans = (
            [("before the restart", 0.0, self.restart[0]), ("after it", self.restart[1], self.seconds)]
            if (self.restart)
            else [("whole run", 0.0, self.seconds)]
        )
        found = []
        for label, start, end in spans:
            samples = [(t, b) for t, b in self.memory if start + warm_up_s <= t <= end]
            if samples:
                warm, last = samples[0][1], samples[-1][1]
                found.append((label, warm, last, (last - warm) / warm))
        return found

    def report(self, warm_up_s: float) -> str:
        during, outside = self.failed()
        ok = sum(1 for r in self.requests if r.outcome.ok)  # type: ignore[attr-defined]
        lines = [
            f"{len(self.requests)} requests in {self.seconds / 60:.1f} min: {ok} ok, {len(during) + len(outside)} "
            f"failed ({len(during)} in flight at the restart, {len(outside)} outside it)"
        ]
        for n, (p50, p95, count) in enumerate(self.quarters(), 1):
            lines.append(f"quarter {n}: {count} requests, p50 {p50:.2f} s, p95 {p95:.2f} s")
        for label, warm, last, change in self.memory_spans(warm_up_s):
            lines.append(
                f"server memory {label}: {warm / 2**20:.1f} MiB after warm-up, {last / 2**20:.1f} MiB at its end "
                f"({change:+.1%})"
            )
        if self.restart:
            lines.append(f"restart at {self.restart[0]:.0f} s, serving again at {self.restart[1]:.0f} s")
        return "\n".join(lines)


def server_memory(container: str) -> int | None:
    """llama-server's own memory in its container: its anonymous resident pages (RssAnon of PID 1),
    what grows when it leaks. The model's weights are a file mapping: the page cache's, and counted in
    or out of the container's figure with it (docker stats moved by the model's size across a restart)."""
    done = subprocess.run(
        ["docker", "exec", container, "cat", "/proc/1/status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


def _ready(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def run_soak(
    url: str,
    model: str,
    container: str,
    *,
    seconds: float,
    clients: int = 4,
    max_tokens: int = 32,
    sample_every_s: float = 5.0,
    restart: bool = True,
) -> Soak:
    """Each client loops until the deadline: short, long, short, ... prompts, every other request
    streamed. Half way through, `docker restart` the container and wait for /health again."""
    load.check_local(url)
    soak = Soak(seconds)
    began = time.monotonic()
    stop_at = began + seconds
    done = threading.Event()
    lock = threading.Lock()

    def client(index: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            prompt = LONG if (index + n) % 3 == 2 else SHORT[(index + n) % len(SHORT)]
            started = time.monotonic() - began
            outcome = load._request(url, model, prompt, max_tokens, stream=n % 2 == 1, key=None)
            with lock:
                soak.requests.append(Timed(started, time.monotonic() - began, outcome))
            if not outcome.ok:
                time.sleep(2.0)  # a real client backs off a little
            n += 1

    def sampler() -> None:
        while not done.is_set():
            used = server_memory(container)
            if used is not None:
                soak.memory.append((time.monotonic() - began, used))
            done.wait(sample_every_s)

    def restarter() -> None:
        if done.wait(seconds / 2):
            return
        down = time.monotonic() - began
        subprocess.run(["docker", "restart", container], capture_output=True, timeout=120, check=False)
        _ready(url, time.monotonic() + 300)
        soak.restart = (down, time.monotonic() - began)

    side = [threading.Thread(target=sampler, daemon=True)]
    if restart:
        side.append(threading.Thread(target=restarter, daemon=True))
    for thread in side:
        thread.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    done.set()
    for thread in side:
        thread.join(timeout=330)
    soak.seconds = time.monotonic() - began
    return soak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--container", help="the server's container (to restart and to sample)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--serve", action="store_true", help="serve the cpu demo model for the run")
    parser.add_argument("--smoke", action="store_true", help="--serve for 20 seconds, one client, 4 tokens")
    opts = parser.parse_args()
    if opts.smoke:
        opts.serve, opts.minutes, opts.clients, opts.max_tokens = True, 1 / 3, 1, 4
    served = None
    url, container = opts.url, opts.container
    if opts.serve:
        url, args, env = load._serve_demo()
        served = (args, env)
        container = subprocess.run(
            ["docker", "ps", "-q", "--filter", "label=com.docker.compose.project=sfo-load-benchmark"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    if not container:
        raise SystemExit("--container NAME (the server's container) or --serve is needed")
    try:
        soak = run_soak(
            url,
            opts.model,
            container,
            seconds=opts.minutes * 60,
            clients=opts.clients,
            max_tokens=opts.max_tokens,
        )
    finally:
        if served is not None:
            args, env = served
            subprocess.run([sys.executable, "-m", "orchestrator", "down", *args], env=env, check=False)
    print(soak.report(warm_up_s=min(60.0, opts.minutes * 60 / 8)))
    # The first goal, as an exit code: a request that failed outside the restart.
    raise SystemExit(1 if soak.failed()[1] else 0)


if __name__ == "__main__":
    main()
