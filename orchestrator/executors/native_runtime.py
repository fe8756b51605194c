"""The server on the host (the Mac's Metal build, --native on Linux): llama-server under launchd on the
Mac or as a background process on Linux, on a Unix socket, with the same proxy as a container's in front
of it (executors.native_proxy)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from orchestrator.core.plan import Plan
from orchestrator.core.plan.jobs import ToolJob
from orchestrator.core.plan.launch_agent import agent_label, launch_agent
from orchestrator.core.plan.native import native_log, proxy_log, socket_guarded
from orchestrator.core.plan.programs import BenchPlan
from orchestrator.core.plan.proxy import PROXY_SERVER, all_secrets_dir, tls_files
from orchestrator.core.plan.server import Address
from orchestrator.executors import certificates, launchd, native, native_proxy
from orchestrator.executors.engine import BuildProgress
from orchestrator.executors.health import Probe
from orchestrator.executors.host import Host
from orchestrator.executors.images import BuildOutcome
from orchestrator.executors.server_state import Deployed, ServerState, api_key, require_free
from orchestrator.files import content_digest, digest_key, write_atomic


def _inputs_digest(plan: Plan) -> str:
    key = plan.api_key_file.read_bytes() if plan.api_key_file and plan.api_key_file.is_file() else b""
    return content_digest(key, digest_key(all_secrets_dir(plan.data_dir)))


def unguarded(argv: tuple[str, ...]) -> tuple[str, ...]:
    """A server's command line without the socket's guard launchd runs it behind (core.plan.native)."""
    return argv[4:] if argv[:2] == ("/bin/sh", "-c") else argv


def listen_address(config: str) -> Address | None:
    """Where a proxy configuration (Caddy's JSON) listens, and over what."""
    try:
        data = json.loads(config)
        server = data["apps"]["http"]["servers"][PROXY_SERVER]
        host, port = str(server["listen"][0]).rsplit(":", 1)
        scheme = "https" if data["apps"].get("tls") else "http"
        return Address(host.strip("[]") or "0.0.0.0", int(port), scheme)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


class NativeRuntime:
    """The server on the host: under launchd on the Mac (the plan's agent), else a background process
    that serve.sh starts and stop.sh stops; in front of it, the same proxy as a container's, run on the
    host (executors.native_proxy)."""

    kind = "native"

    def __init__(self, host: Host, *, launchd: bool = False) -> None:
        self.host = host
        self.launchd = launchd

    def require(self, *, serving: bool) -> None:
        if serving:
            native_proxy.caddy()

    def is_built(self, plan: Plan) -> bool:
        return native.is_built(plan)

    def build(
        self, plan: Plan, *, rebuild: bool, on_progress: Callable[[BuildProgress], None]
    ) -> BuildOutcome:
        return native.build(plan, rebuild)

    def _current(self, plan: Plan) -> native.NativeState:
        """The server as its supervisor knows it: launchd's job and agent file, or the pid file; its
        command line as the supervisor runs it (under launchd, behind the socket's guard)."""
        if not self.launchd:
            return native.state(plan)
        label = agent_label(plan.project)
        agent = launchd.loaded_agent(label) or {}
        state, pid = launchd.job_state(self.host, label)
        return native.NativeState(
            pid,
            state == "running",
            tuple(agent.get("ProgramArguments", ())),
            native_log(plan.data_dir),
            dict(agent.get("EnvironmentVariables", {})),
        )

    def _command(self, plan: Plan, argv: Sequence[str]) -> tuple[str, ...]:
        """The command line the supervisor runs: under launchd, behind the socket folder's guard."""
        return socket_guarded(argv, Path(plan.socket)) if self.launchd else tuple(argv)

    def _proxy(self, plan: Plan) -> native_proxy.ProxyState:
        return native_proxy.agent_state(self.host, plan) if self.launchd else native_proxy.state(plan)

    def _start(self, plan: Plan, argv: Sequence[str], env: Mapping[str, str]) -> None:
        native.socket_folder(plan)  # refused here, in one line, rather than by launchd's restarts
        if not self.launchd:
            native.start_command(plan, argv, env)
            return
        state = native.state_dir(plan)
        state.mkdir(parents=True, exist_ok=True)
        launchd.load(
            self.host,
            launch_agent(
                agent_label(plan.project), self._command(plan, argv), env, state, native_log(plan.data_dir)
            ),
        )

    def _proxy_serves(self, plan: Plan) -> Address | None:
        """Where the running proxy of this plan's name answers (None: none runs): read from the
        configuration it was started with, still on disk (start writes a new one only after)."""
        if not self._proxy(plan).running or not plan.proxy_file.is_file():
            return None
        return listen_address(plan.proxy_file.read_text())

    def check_port(self, plan: Plan) -> None:
        # This plan's proxy (or the one of the server it replaces) holds its port until it is replaced.
        served = self._proxy_serves(plan)
        if served is not None and served.port == plan.publish.port:
            return
        require_free(self.host, plan.publish)

    def start(self, plan: Plan) -> bool:
        """The server and its proxy, each started (or replaced) unless it runs as the plan says and read at
        start what the plan gives it now (the key; the proxy's configuration and certificate)."""
        current = self._current(plan)
        # launchd runs the server from the plan's agent (runtime_for makes a launchd runtime for one).
        if plan.launch_agent is not None:
            env = dict(plan.launch_agent["EnvironmentVariables"])
        else:
            env = dict(plan.server.env)
        env[native_proxy.INPUTS_VARIABLE] = _inputs_digest(plan)
        started = False
        if not (
            current.running
            and current.argv == self._command(plan, plan.server.argv)
            and current.env.get(native_proxy.INPUTS_VARIABLE) == env[native_proxy.INPUTS_VARIABLE]
        ):
            self._start(plan, plan.server.argv, env)
            started = True
        return self._start_proxy(plan, json.dumps(plan.proxy, indent=2) + "\n") or started

    def _start_proxy(self, plan: Plan, config: str) -> bool:
        """The proxy with this configuration, (re)started unless it runs with it and the same TLS files."""
        certificates.prepare(plan.exposure, tls_files(plan.data_dir, plan.project))
        write_atomic(plan.proxy_file, config)
        command, inputs = native_proxy.argv(plan), native_proxy.inputs_digest(plan)
        proxy = self._proxy(plan)
        if proxy.running and proxy.argv == command and proxy.inputs == inputs:
            return False
        if self.launchd:
            native_proxy.start_agent(self.host, plan, command, inputs)
        else:
            native_proxy.start(plan, command, inputs)
        return True

    def stop(self, plan: Plan) -> bool:
        if self.launchd:
            proxy = native_proxy.stop_agent(self.host, plan)
            return launchd.unload(self.host, agent_label(plan.project)) or proxy
        proxy = native_proxy.stop(plan)
        return native.stop(plan) or proxy

    def state(self, plan: Plan) -> ServerState:
        current = self._current(plan)
        return ServerState(
            state="running" if current.running else "stopped",
            running=current.running,
            health=self.host.readiness(plan.base_url + "/health", api_key(plan), trust=plan.trust)
            if current.running
            else "down",
            pid=current.pid if current.running else None,
            log=str(current.log),
        )

    def probe(self, plan: Plan, at: Address | None = None) -> Probe:
        current = self._current(plan)
        if not current.running:
            tail = native.log_tail(plan, 1)
            return Probe("failed", f"llama-server exited ({tail[0] if tail else 'no log'})")
        if not self._proxy(plan).running:
            return Probe(
                "failed",
                f"the proxy in front of llama-server exited (its log: {proxy_log(plan.data_dir, plan.project)})",
            )
        return Probe(
            self.host.readiness((at or plan.publish).url + "/health", trust=plan.trust), f"pid {current.pid}"
        )

    def deployed(self, plan: Plan) -> Deployed | None:
        """What serves under the plan's name when it is not this plan's: the server's command line and
        environment, and the configuration its proxy runs with (a change to either is a new server)."""
        current = self._current(plan)
        served = self._proxy_serves(plan)
        if not current.running or served is None:
            return None
        config = plan.proxy_file.read_bytes()
        if (
            current.argv == self._command(plan, plan.server.argv)
            and config.decode() == json.dumps(plan.proxy, indent=2) + "\n"
        ):
            return None
        return Deployed(
            served, argv=unguarded(current.argv), env=current.env, files={plan.proxy_file: config}
        )

    def restore(self, plan: Plan, deployed: Deployed) -> None:
        self._start(plan, deployed.argv, deployed.env)
        config = deployed.files.get(plan.proxy_file)
        if config is not None:
            self._start_proxy(plan, config.decode())

    def logs(self, plan: Plan, *, tail: int | None, follow: bool = False) -> Iterable[str]:
        return native.log_lines(plan, tail, follow)

    def run(self, plan: Plan) -> Iterable[str]:
        return native.stream(plan, "run.sh", plan.run.argv, dict(plan.run.env))

    def bench(self, plan: Plan, bench: BenchPlan) -> Iterable[str]:
        return native.stream(plan, "bench.sh", bench.command.argv, dict(bench.command.env))

    def tool(self, plan: Plan, job: ToolJob) -> Iterable[str]:
        return native.stream(plan, "run.sh", job.host_argv(native.build_of(plan)), dict(job.env))

    def location(self, plan: Plan) -> str:
        return str(native.state(plan).log)
