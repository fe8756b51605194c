"""Is the server ready? llama-server refuses connections before its port opens, answers 503 while the
model loads and 200 when it is ready; waiting is retried with tenacity until a deadline."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.core.plan import Trust
from orchestrator.executors.http import open_url

Readiness = Literal["ready", "loading", "down", "failed"]


@dataclass(frozen=True)
class Probe:
    readiness: Readiness
    detail: str = ""
    # Failed because the kernel ended it for want of memory.
    out_of_memory: bool = False


def http_readiness(
    url: str, api_key: str | None = None, timeout: float = 5.0, trust: Trust | None = None
) -> Readiness:
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with open_url(request, timeout, trust) as response:
            return "ready" if response.status == 200 else "loading"
    except urllib.error.HTTPError as exc:
        return "loading" if exc.code == 503 else "down"
    except (OSError, ValueError):
        return "down"


def wait_until_ready(
    probe: Callable[[], Probe],
    *,
    timeout_s: float,
    interval_s: float = 1.0,
    on_tick: Callable[[Probe, float], None] = lambda _p, _t: None,
) -> Probe:
    """Poll until ready or failed; past the deadline the last probe is returned as it stands."""
    started = time.monotonic()
    probes: list[Probe] = []

    def attempt() -> Probe:
        probes.append(probe())
        on_tick(probes[-1], time.monotonic() - started)
        return probes[-1]

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda p: p.readiness in ("loading", "down")),
    )
    try:
        return retrying(attempt)
    except RetryError:
        return probes[-1]
