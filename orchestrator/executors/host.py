"""What the workflow needs from the machine it runs on, as a protocol: network and process probes, the
profile's host steps, source mirrors. `LocalHost` is the real one; tests hand in a recording fake."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path
from typing import Any, Protocol

from orchestrator.core.facts import HostFacts
from orchestrator.core.plan import Trust
from orchestrator.core.plan.host_steps import HostStep
from orchestrator.core.registry import registry_host
from orchestrator.core.rpc import Endpoint, LinkAddress
from orchestrator.core.sources import Source
from orchestrator.errors import OrchestratorError
from orchestrator.executors import rpc
from orchestrator.executors.health import Readiness, http_readiness
from orchestrator.executors.hooks import HookResult, run_host_steps
from orchestrator.executors.http import open_url
from orchestrator.executors.probe import host_summary
from orchestrator.executors.rpc import Hello, Link
from orchestrator.executors.sources import from_mirror, git_reachable, newest_commit

# A long answer on a slow machine (a 4-client round on two CPU cores) still comes back within this.
_CHAT_TIMEOUT_S = 600


class Host(Protocol):
    def git_reachable(self, url: str) -> bool: ...

    def newest_commit(self, url: str) -> str | None:
        """The commit a git repository's HEAD names now; None where it cannot be reached."""

    def mirror(self, source: Source, cache: Path) -> Source: ...

    def can_bootstrap(self) -> bool: ...

    def run_steps(
        self,
        steps: Sequence[HostStep],
        *,
        decisions: Mapping[str, bool | None],
        ask: Callable[[str], bool] | None,
    ) -> list[HookResult]: ...

    def address_free(self, host: str, port: int) -> bool: ...

    def readiness(self, url: str, api_key: str | None = None, *, trust: Trust | None = None) -> Readiness: ...

    def throughput(
        self, base_url: str, api_key: str | None, *, trust: Trust | None = None
    ) -> dict[str, float]: ...

    def props(self, base_url: str, api_key: str | None, *, trust: Trust | None = None) -> Mapping[str, Any]:
        """llama-server's /props (is_sleeping, build_info, ...); empty when it does not answer."""

    def page_status(self, url: str, *, trust: Trust | None = None) -> int | None:
        """The HTTP status a browser gets for url (it accepts gzip), or None when nothing answers."""

    def registry_problem(self, registry: str) -> str | None:
        """Why a registry cannot be pulled from (it does not answer within a bounded time); None: it answers."""

    def summary(self, facts: HostFacts) -> dict[str, Any]: ...

    def free_port(self, host: str) -> int:
        """A port nothing listens on at host now (for a server the command starts for itself)."""

    def chat(
        self, base_url: str, api_key: str | None, body: Mapping[str, Any], *, trust: Trust | None = None
    ) -> dict[str, Any]:
        """One chat completion: the server's JSON answer; ServerRequestFailed when it gives none."""

    def rpc_hello(self, endpoint: Endpoint) -> Hello:
        """An RPC worker's protocol version, asked as llama.cpp's client asks (only before a head connects)."""

    def rpc_reachable(self, endpoint: Endpoint) -> bool:
        """Whether an RPC worker's port accepts a connection (nothing is sent)."""

    def rpc_link(self, endpoint: Endpoint) -> Link:
        """The interface this host reaches a worker through, its speed and MTU."""

    def link_address(self, host: str) -> LinkAddress | None:
        """The interface of this machine that holds host, and its network (None: none holds it)."""

    def apply_firewall(self, rules: str) -> None:
        """Load an nftables ruleset (needs root)."""

    def launchctl(self, *args: str) -> tuple[int, str]:
        """Run macOS's launchctl with args: its exit code and what it printed."""


class ServerRequestFailed(OrchestratorError):
    """A request to llama-server got no answer, or an error status."""


_METRIC = re.compile(r"^llamacpp:(prompt_tokens_seconds|predicted_tokens_seconds)\s+([0-9.eE+-]+)$")


# How long a registry may take to answer before the build goes on without it.
REGISTRY_TIMEOUT_S = 10


class LocalHost:
    """This machine."""

    def git_reachable(self, url: str) -> bool:
        return git_reachable(url)

    def newest_commit(self, url: str) -> str | None:
        return newest_commit(url)

    def mirror(self, source: Source, cache: Path) -> Source:
        return from_mirror(source, cache)

    def can_bootstrap(self) -> bool:
        return os.geteuid() == 0 and shutil.which("debootstrap") is not None

    def run_steps(
        self,
        steps: Sequence[HostStep],
        *,
        decisions: Mapping[str, bool | None],
        ask: Callable[[str], bool] | None,
    ) -> list[HookResult]:
        return run_host_steps(steps, decisions=decisions, ask=ask)

    def address_free(self, host: str, port: int) -> bool:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                return False
        return True

    def readiness(self, url: str, api_key: str | None = None, *, trust: Trust | None = None) -> Readiness:
        return http_readiness(url, api_key, trust=trust)

    def throughput(
        self, base_url: str, api_key: str | None, *, trust: Trust | None = None
    ) -> dict[str, float]:
        """Average prompt and generation speed since start, from llama-server's Prometheus metrics."""
        request = urllib.request.Request(base_url + "/metrics")
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        try:
            with open_url(request, 5, trust) as response:
                text = response.read().decode()
        except (OSError, ValueError):
            return {}
        found = {}
        for line in text.splitlines():
            if match := _METRIC.match(line.strip()):
                found[match[1].removesuffix("_tokens_seconds")] = round(float(match[2]), 2)
        return found

    def summary(self, facts: HostFacts) -> dict[str, Any]:
        return host_summary(facts)

    def props(self, base_url: str, api_key: str | None, *, trust: Trust | None = None) -> Mapping[str, Any]:
        request = urllib.request.Request(base_url + "/props")
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        try:
            with open_url(request, 5, trust) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError):
            return {}
        return answer if isinstance(answer, dict) else {}

    def free_port(self, host: str) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])

    def chat(
        self, base_url: str, api_key: str | None, body: Mapping[str, Any], *, trust: Trust | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        request = urllib.request.Request(
            base_url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=headers
        )
        try:
            with open_url(request, _CHAT_TIMEOUT_S, trust) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise ServerRequestFailed(f"llama-server answered HTTP {exc.code}: {detail}") from None
        except (OSError, ValueError) as exc:
            raise ServerRequestFailed(f"no answer from llama-server at {base_url}: {exc}") from None
        if not isinstance(answer, dict):
            raise ServerRequestFailed(
                f"llama-server at {base_url} answered something that is not a completion"
            )
        return answer

    def rpc_hello(self, endpoint: Endpoint) -> Hello:
        return rpc.hello(endpoint)

    def rpc_reachable(self, endpoint: Endpoint) -> bool:
        return rpc.reachable(endpoint)

    def rpc_link(self, endpoint: Endpoint) -> Link:
        return rpc.link_to(endpoint)

    def link_address(self, host: str) -> LinkAddress | None:
        return rpc.link_address(host)

    def apply_firewall(self, rules: str) -> None:
        rpc.apply_firewall(rules)

    def page_status(self, url: str, *, trust: Trust | None = None) -> int | None:
        # llama-server serves its built-in page gzip-only (415 to a client that does not accept it).
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", "Accept": "text/html"})
        try:
            with open_url(request, 10, trust) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return None

    def registry_problem(self, registry: str) -> str | None:
        # Docker itself speaks plain HTTP to a loopback registry and HTTPS to any other. Any answer at
        # /v2/ (401 from one that wants a login included) is a registry there. Asked in a thread, so a
        # name lookup that hangs is bounded too (urlopen's timeout covers only the socket).
        host = registry_host(registry)
        loopback = host.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")
        url = f"{'http' if loopback else 'https'}://{host}/v2/"

        def ask() -> str | None:
            try:
                with urllib.request.urlopen(url, timeout=REGISTRY_TIMEOUT_S):
                    return None
            except urllib.error.HTTPError:
                return None
            except (OSError, ValueError) as exc:
                return f"{url}: {getattr(exc, 'reason', exc)}"

        pool = ThreadPoolExecutor(max_workers=1)
        try:
            return pool.submit(ask).result(timeout=REGISTRY_TIMEOUT_S + 1)
        except FuturesTimeout:
            return f"{url}: no answer within {REGISTRY_TIMEOUT_S} s"
        finally:
            pool.shutdown(wait=False)

    def launchctl(self, *args: str) -> tuple[int, str]:
        if shutil.which("launchctl") is None:
            return 127, "launchctl is not on this machine (it is macOS's)"
        done = subprocess.run(["launchctl", *args], capture_output=True, text=True, check=False)
        return done.returncode, done.stdout + done.stderr
