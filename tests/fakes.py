"""Recording stand-ins for the executors the workflow is handed: a container engine and a host that do
nothing but remember what they were asked and answer as each test sets them up. The real ones are
tested against Docker and this machine in tests/engine and tests/host."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.app.commands.bench.serve_bench import ServingSweep
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.core.bases import BaseSpec
from orchestrator.core.facts import EngineFacts, HostFacts
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan import Plan, Trust
from orchestrator.core.plan.container import ContainerSpec
from orchestrator.core.plan.host_steps import HostStep
from orchestrator.core.rpc import Endpoint, LinkAddress
from orchestrator.core.sources import Source
from orchestrator.core.speculation import Speculative
from orchestrator.executors.engine import (
    BaseOutcome,
    BuildFailed,
    BuildProgress,
    CommandFailed,
    EngineError,
    ServiceState,
)
from orchestrator.executors.health import Readiness
from orchestrator.executors.hooks import HookResult
from orchestrator.executors.rpc import Hello, Link
from tests.planning import fixed_plan


@dataclass
class FakeEngine:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    # Base images this engine cannot pull (a build on them fails the way BuildKit says so).
    unpullable: set[str] = field(default_factory=set)
    # What the service is once `compose up` ran: running (the default), or a state a test sets.
    state_after_up: str = "running"
    # Or one state per `compose up`, in order (then state_after_up).
    states_after_up: list[str] = field(default_factory=list)
    # The kernel's OOM killer ends the server once it is up (Docker's OOMKilled).
    oom_after_up: bool = False
    service_state: ServiceState | None = None
    service_log: list[str] = field(default_factory=lambda: ["llama-server: loading model"])
    # Or the server's log after each `compose up`, in order (then service_log stays as it is).
    logs_after_up: list[list[str]] = field(default_factory=list)
    # One list of output lines per one-off run, used in order; a run may end with a failure.
    outputs: list[list[str]] = field(default_factory=list)
    # What build-llama.sh wrote of the RPC protocol into the image (None: a build before it did).
    rpc_protocol: str | None = "7.0.0"
    fail_run_with: int | None = None
    # What a registry holds: reference (by tag or @digest) -> (labels, platform, digest).
    registry: dict[str, tuple[dict[str, str], str, str]] = field(default_factory=dict)
    platforms: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    # What docker stats says the running container holds.
    memory: int | None = 300 << 20
    # Host files running containers of ours map, with the container that maps each.
    in_use: dict[Path, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def require(self, *, buildx: bool = False, compose: bool = False) -> None:
        self.calls.append(("require", (buildx, compose)))

    def require_platform(self, platform: str) -> None:
        self.calls.append(("require_platform", platform))

    def versions(self) -> EngineFacts:
        return EngineFacts(server="99.0", buildx="buildx v0", compose="compose v2")

    def image_id(self, tag: str) -> str | None:
        return f"sha256:{abs(hash(tag)):x}" if tag in self.images else None

    def image_labels(self, tag: str) -> Mapping[str, str] | None:
        return self.images.get(tag)

    def build(
        self,
        *,
        context: Path,
        dockerfile: Path,
        stage: str,
        tag: str,
        build_args: Mapping[str, str],
        labels: Mapping[str, str],
        platform: str | None,
        log_path: Path,
        on_progress: Callable[[BuildProgress], None] = lambda _: None,
        cache: str | None = None,
    ) -> None:
        self.calls.append(("build", dict(build_args)))
        assert (context / "build-llama.sh").is_file(), "the build context holds the shared build script"
        if build_args["BUILD_BASE"] in self.unpullable:
            raise BuildFailed(
                "toolchain", f"load metadata for {build_args['BUILD_BASE']}", log_path, pull_failed=True
            )
        self.images[tag] = dict(labels)

    def read_files(
        self, tag: str, paths: Sequence[str], platform: str | None = None
    ) -> dict[str, str | None]:
        from orchestrator.executors.images import RPC_PROTOCOL_FILE, WEBUI_FILE

        files = {
            WEBUI_FILE: "none: the build could not fetch llama.cpp's web UI bundle",
            RPC_PROTOCOL_FILE: self.rpc_protocol,
        }
        return {path: files.get(path) if tag in self.images else None for path in paths}

    def promote(self, staged: str, tag: str, labels: Mapping[str, str], platform: str) -> None:
        self.calls.append(("promote", dict(labels)))
        self.images[tag] = {**self.images.pop(staged), **labels}

    def pull(self, reference: str, on_layer: Callable[[str, str], None]) -> None:
        self.calls.append(("pull", reference))
        if reference not in self.registry:
            raise EngineError(f"docker pull {reference} failed: manifest unknown")
        labels, platform, digest = self.registry[reference]
        on_layer("0123456789ab", "Pull complete")
        self.images[reference] = dict(labels)
        self.platforms[reference] = platform
        self.digests[reference] = digest

    def image_platform(self, tag: str) -> str:
        return self.platforms.get(tag, "linux/amd64")

    def repo_digest(self, reference: str) -> str | None:
        return self.digests.get(reference)

    def tag(self, source: str, target: str) -> None:
        self.calls.append(("tag", (source, target)))
        self.images[target] = dict(self.images[source])
        self.platforms[target] = self.platforms.get(source, "linux/amd64")

    def push(self, tag: str, registry: str) -> tuple[str, str | None]:
        self.calls.append(("push", (tag, registry)))
        return f"{registry}/{tag}", "sha256:0"

    def make_base(self, spec: BaseSpec, work_dir: Path, *, rebuild: bool = False) -> BaseOutcome:
        self.calls.append(("make_base", spec.tag))
        self.images[spec.tag] = {}
        return BaseOutcome(spec.tag, made=True, seconds=0.0)

    def stream(self, spec: ContainerSpec, argv: Sequence[str], env: Mapping[str, str]) -> Iterable[str]:
        self.calls.append(("stream", tuple(argv)))
        yield from self.outputs.pop(0) if self.outputs else []
        if self.fail_run_with is not None:
            raise CommandFailed(argv[0], self.fail_run_with)

    def compose_up(self, file: Path, project: str) -> None:
        self.calls.append(("compose_up", (file, project)))
        assert file.is_file(), "compose up is given the file it runs"
        state = self.states_after_up.pop(0) if self.states_after_up else self.state_after_up
        if self.logs_after_up:
            self.service_log = self.logs_after_up.pop(0)
        self.service_state = ServiceState(
            container=f"{project}-llama-server-1",
            image="image",
            state=state,
            health=None,
            started_at=None,
            exit_code=137 if self.oom_after_up else 1 if state == "exited" else None,
            restarts=0,
            config_hash=None,
            published=(),
            oom_killed=self.oom_after_up,
        )

    def compose_down(self, file: Path, project: str) -> None:
        self.calls.append(("compose_down", (file, project)))
        self.service_state = None

    def service(self, project: str, name: str) -> ServiceState | None:
        return self.service_state

    def files_in_use(self) -> Mapping[Path, str]:
        return dict(self.in_use)

    def service_memory(self, project: str, name: str) -> int | None:
        return self.memory if self.service_state is not None else None

    def service_logs(
        self, project: str, name: str, *, tail: int | None = None, follow: bool = False
    ) -> Iterable[str]:
        return list(self.service_log[-tail:] if tail else self.service_log)


@dataclass
class FakeHost:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    reachable: bool = True
    bootstrap: bool = True
    ports_in_use: set[int] = field(default_factory=set)
    ready: Readiness = "ready"
    page: int | None = 404
    newest: str | None = None
    # The decode speeds (tokens/s) successive chats report, the last one repeated; empty: 40 (60 drafting).
    decode_rates: list[float] = field(default_factory=list)
    props_answer: dict[str, Any] = field(default_factory=lambda: {"is_sleeping": False})
    # What chat() answers: whether the server it talks to drafts (set by the test), diverges when it does,
    # or fails from the Nth request on.
    drafting: Callable[[], bool] = lambda: False
    diverge: bool = False
    chat_fails_after: int | None = None
    # With logprobs asked: how far the chosen token is above the runner-up, at every token.
    margin: float = 1.0
    chats: list[dict[str, Any]] = field(default_factory=list)
    # RPC workers that answer, by ADDRESS:PORT, with the protocol version each speaks.
    workers: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # launchd's jobs by service target (gui/UID/LABEL), as `launchctl print` describes them once loaded.
    jobs: dict[str, str] = field(default_factory=dict)
    # This machine's addresses beyond loopback: the interface holding each, and its network.
    links: dict[str, LinkAddress] = field(default_factory=dict)
    # Why the registry does not answer (None: it does); no registry answers unless a test says so.
    registry_down: str | None = "connection refused"

    def git_reachable(self, url: str) -> bool:
        self.calls.append(("git_reachable", url))
        return self.reachable

    def mirror(self, source: Source, cache: Path) -> Source:
        self.calls.append(("mirror", source.name))
        tree = cache / "tree"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "CMakeLists.txt").write_text("project(llama.cpp)\n")
        return replace(
            source,
            name=f"{source.name} via mirror",
            kind="local",
            path=cache / "tree",
            revision=source.commit,
            mirror=None,
        )

    def newest_commit(self, url: str) -> str | None:
        self.calls.append(("newest_commit", url))
        return self.newest if self.reachable else None

    def can_bootstrap(self) -> bool:
        return self.bootstrap

    def run_steps(
        self,
        steps: Sequence[HostStep],
        *,
        decisions: Mapping[str, bool | None],
        ask: Callable[[str], bool] | None,
    ) -> list[HookResult]:
        self.calls.append(("run_steps", tuple(s.name for s in steps)))
        return [HookResult(s.name, False, f"skipped {s.name}") for s in steps]

    def address_free(self, host: str, port: int) -> bool:
        return port not in self.ports_in_use

    def readiness(self, url: str, api_key: str | None = None, *, trust: Trust | None = None) -> Readiness:
        return self.ready

    def throughput(
        self, base_url: str, api_key: str | None, *, trust: Trust | None = None
    ) -> dict[str, float]:
        return {"predicted": 1.0}

    def summary(self, facts: HostFacts) -> dict[str, Any]:
        return {"system": facts.system}

    def props(self, base_url: str, api_key: str | None, *, trust: Trust | None = None) -> Mapping[str, Any]:
        return self.props_answer

    def page_status(self, url: str, *, trust: Trust | None = None) -> int | None:
        return self.page

    def registry_problem(self, registry: str) -> str | None:
        self.calls.append(("registry_problem", registry))
        return self.registry_down

    def free_port(self, host: str) -> int:
        return 18080

    def rpc_hello(self, endpoint: Endpoint) -> Hello:
        self.calls.append(("rpc_hello", str(endpoint)))
        version = self.workers.get(str(endpoint))
        return Hello(endpoint, version, None if version else "Connection refused")

    def rpc_reachable(self, endpoint: Endpoint) -> bool:
        return self.workers.get(str(endpoint)) is not None

    def link_address(self, host: str) -> LinkAddress | None:
        return self.links.get(host)

    def apply_firewall(self, rules: str) -> None:
        self.calls.append(("apply_firewall", rules))

    def rpc_link(self, endpoint: Endpoint) -> Link:
        return (
            Link("enp1s0f0np0", 1000, 1500)
            if endpoint.host.startswith("192.168.")
            else Link("lo", None, 65536)
        )

    def chat(
        self, base_url: str, api_key: str | None, body: Mapping[str, Any], *, trust: Trust | None = None
    ) -> dict[str, Any]:
        """A canned completion: drafting (a plan with --spec-type) reports draft counts and decodes faster;
        refusing: the server answers an error status from the given request on."""
        self.calls.append(("chat", base_url))
        if self.chat_fails_after is not None and len(self.chats) >= self.chat_fails_after:
            from orchestrator.executors.host import ServerRequestFailed

            raise ServerRequestFailed("llama-server answered HTTP 500: boom")
        self.chats.append(dict(body))
        drafting = self.drafting()
        timings = {
            "prompt_n": 20,
            "prompt_ms": 40.0,
            "prompt_per_second": 500.0,
            "predicted_n": 30,
            "predicted_per_second": self._decode_rate(drafting),
            "draft_n": 12 if drafting else 0,
            "draft_n_accepted": 9 if drafting else 0,
        }
        text = "same text" if not self.diverge or not drafting else "other text"
        choice: dict[str, Any] = {"message": {"content": text}}
        if body.get("logprobs"):
            top = [{"logprob": -0.5}, {"logprob": -0.5 - self.margin}]
            choice["logprobs"] = {
                "content": [{"token": t, "logprob": -0.5, "top_logprobs": top} for t in ("same", " text")]
            }
        return {"choices": [choice], "timings": timings}

    def _decode_rate(self, drafting: bool) -> float:
        if self.decode_rates:
            return self.decode_rates.pop(0) if len(self.decode_rates) > 1 else self.decode_rates[0]
        return 60.0 if drafting else 40.0

    def launchctl(self, *args: str) -> tuple[int, str]:
        """launchd as launchctl 2 answers: bootstrap loads (and RunAtLoad starts) an agent file, bootout
        unloads a job, print describes a loaded one."""
        self.calls.append(("launchctl", args))
        verb = args[0]
        if verb == "bootstrap":
            import plistlib

            label = plistlib.loads(Path(args[2]).read_bytes())["Label"]
            self.jobs[f"{args[1]}/{label}"] = "state = running\n\tpid = 4242\n"
            return 0, ""
        if verb == "bootout":
            return (0, "") if self.jobs.pop(args[1], None) else (3, "Boot-out failed: 3: No such process")
        if verb == "print":
            job = self.jobs.get(args[1])
            return (0, f"{args[1]} = {{\n\t{job}}}\n") if job else (113, "Could not find service")
        return 64, "unknown subcommand"


@dataclass
class Notes:
    lines: list[str] = field(default_factory=list)
    # How questions are answered: None for no terminal, else the answer given (and questions kept).
    answers: bool | None = None
    questions: list[str] = field(default_factory=list)

    def answer_with(self, question: str) -> bool:
        self.questions.append(question)
        return bool(self.answers)

    @property
    def answer(self) -> Callable[[str], bool] | None:
        return None if self.answers is None else self.answer_with

    def reporter(self) -> Reporter:
        class View:
            def update(self, *_args: object) -> None:
                return None

        @contextmanager
        def view(_what: str) -> Any:
            yield View()

        @contextmanager
        def transfer(_label: str, _total: int, _initial: int) -> Any:
            yield lambda _n: None

        return Reporter(
            note=self.lines.append,
            building=view,
            waiting=view,
            ask=self.answer,
            transfer=transfer,
            pulling=view,
        )


def executors(engine: FakeEngine | None = None, host: FakeHost | None = None) -> Executors:
    return Executors(engine or FakeEngine(), host or FakeHost())


def cpu_plan(data_dir: Path, model: Path | None = None, **settings: object) -> Plan:
    """The cpu target's plan with its data under data_dir and, when given, a real model file."""
    return target_plan("cpu", data_dir, model, **settings)


def target_plan(target: str, data_dir: Path, model: Path | None = None, **settings: object) -> Plan:
    """A target's default plan (on that target's kind of host) with its data under data_dir and, when
    given, a real model file in place of the target's."""
    plan = fixed_plan(target, "default", {"data_dir": data_dir, **settings})
    if model is None:
        return plan
    spec: ModelSpec = replace(plan.model, path=model, size_bytes=model.stat().st_size)
    from orchestrator.core.plan import with_model

    return with_model(plan, spec)


def bench_serve_on_fakes(
    tmp_path: Path,
    model: Path,
    host: FakeHost,
    engine: FakeEngine,
    *,
    sweep: Sequence[Speculative] = (),
    clients: tuple[int, ...] = (1, 4),
    started: dict[int, str] | None = None,
    **settings: object,
) -> ServingSweep:
    """`bench serve` of a model file on the recording fakes. The fake server drafts where the compose file
    compose last started says so; started (when given) keeps each of those files by start number."""
    from orchestrator.app.commands.bench.serve_bench import bench_serve
    from orchestrator.core.plan import with_model
    from orchestrator.models.local import refresh

    def drafting() -> bool:
        ups = [args for name, args in engine.calls if name == "compose_up"]
        text = ups[-1][0].read_text() if ups else ""
        if started is not None:
            started[len(ups)] = text
        return "--spec-type" in text

    host.drafting = drafting
    plan = cpu_plan(tmp_path, model, **settings)
    # The model as a command reads it: its architecture and MTP heads from the file.
    plan = with_model(plan, refresh(replace(plan.model, expected_arch=None), tmp_path / "gguf.json"))
    return bench_serve(
        plan,
        executors(engine, host),
        Notes().reporter(),
        results=tmp_path / "results",
        clients=clients,
        decisions={},
        sweep=tuple(sweep),
    )
