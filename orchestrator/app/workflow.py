"""The steps of each command in order, with their fallbacks. Every function is handed the command's one
plan and the executors (an `Engine` and a `Host`, as protocols); a fallback that changes the plan does
so through a named function of orchestrator.core.plan and says so. The CLI gives it callbacks to show
progress and renders what it returns."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from orchestrator.app.results import append_record
from orchestrator.core.bases import base_specs
from orchestrator.core.bench import BenchRecord, missing_rows, parse_jsonl, parse_output
from orchestrator.core.catalogue import FAMILIES
from orchestrator.core.doctor import DoctorFacts, WorkerFacts
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.core.plan import Plan, for_serving_bench, with_local_bases, with_model, with_source
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.programs import BenchPlan
from orchestrator.core.preflight import check_beside_server, check_memory, check_model
from orchestrator.core.reference import BenchRow
from orchestrator.core.rpc import Endpoint
from orchestrator.core.serve_bench import (
    Divergence,
    Prompt,
    ServeRecord,
    ServeRow,
    ServeSample,
    compare_serving,
    divergences,
    divergent,
    prompt_set,
    request_body,
    sample_from_response,
    token_margins,
)
from orchestrator.core.speculation import OFF
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors.engine import BuildFailed, BuildProgress, CommandFailed, Engine
from orchestrator.executors.health import Probe, wait_until_ready
from orchestrator.executors.host import Host, ServerRequestFailed
from orchestrator.executors.images import DRIVER_LABEL, RPC_PROTOCOL_LABEL, BuildOutcome
from orchestrator.executors.runtime import Runtime, ServerState, api_key, runtime_for
from orchestrator.models.hub import PullPlan
from orchestrator.models.local import file_sha256, refresh, write_demo_model
from orchestrator.models.pull import PullReport
from orchestrator.models.pull import pull as pull_model


class BuildView(Protocol):
    def update(self, progress: BuildProgress) -> None: ...


class WaitView(Protocol):
    def update(self, probe: Probe, elapsed: float, last_line: str) -> None: ...


@dataclass(frozen=True)
class Reporter:
    note: Callable[[str], None]
    building: Callable[[str], AbstractContextManager[BuildView]]
    waiting: Callable[[str], AbstractContextManager[WaitView]]
    ask: Callable[[str], bool] | None
    # A byte counter per file transferred: (label, total bytes, bytes already there).
    transfer: Callable[[str, int, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class Executors:
    """What carries a plan out: the container engine and this host."""

    engine: Engine
    host: Host

    def runtime(self, plan: Plan) -> Runtime:
        return runtime_for(plan, self.engine, self.host)


# --- build ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    plan: Plan
    outcome: BuildOutcome


def build(plan: Plan, ex: Executors, report: Reporter, *, rebuild: bool) -> Built:
    """Build the plan's image or native install. Where the git server cannot be reached, the same commit
    comes from the source's package-index mirror; where the bases cannot be pulled, local ones are made
    (as root) unless the bases were chosen."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    if not rebuild and runtime.is_built(plan):
        return Built(plan, BuildOutcome(_built_name(plan), built=False, seconds=0.0, log=None))
    plan = mirrored(plan, ex.host, report)
    try:
        return Built(plan, _build(runtime, plan, report, rebuild))
    except BuildFailed as failure:
        if not _local_bases_would_help(plan, failure):
            raise
        if not ex.host.can_bootstrap():
            name = _image(plan).family
            raise OrchestratorError(
                f"{failure}; making local bases needs root and debootstrap: "
                f"sudo orchestrator bases bootstrap --family {name} --platform {_image(plan).platform}"
            ) from None
    image = _image(plan)
    family = FAMILIES[image.family]
    report.note(f"the {family.name} base images cannot be pulled here; making local ones with debootstrap")
    for spec in base_specs(family, image.platform, build_platform=image.build_platform):
        made = ex.engine.make_base(spec, plan.data_dir)
        report.note(f"{made.tag}: " + (f"made in {made.seconds:.0f} s" if made.made else "present"))
    plan = with_local_bases(plan, "the upstream bases could not be pulled")
    return Built(plan, _build(runtime, plan, report, rebuild))


def _image(plan: Plan) -> ImageBuild:
    assert isinstance(plan.build, ImageBuild)
    return plan.build


def _built_name(plan: Plan) -> str:
    return plan.build.tag if isinstance(plan.build, ImageBuild) else plan.build.prefix


def _local_bases_would_help(plan: Plan, failure: BuildFailed) -> bool:
    """Only for the family's default bases that could not be pulled: an explicit --bases is obeyed."""
    image = _image(plan)
    chosen = plan.origin("bases") != "default"
    return (
        not chosen
        and failure.pull_failed
        and image.build_args["BUILD_BASE"] == FAMILIES[image.family].build_base
    )


def mirrored(plan: Plan, host: Host, report: Reporter) -> Plan:
    """The plan with its git source taken from the package-index mirror when the git server is out of reach."""
    source = plan.source
    if (
        source.kind == "git"
        and source.mirror is not None
        and source.url
        and not host.git_reachable(source.url)
    ):
        report.note(f"cannot reach {source.url}; taking the same commit from the {source.mirror.describe()}")
        return with_source(plan, host.mirror(source, plan.data_dir / "sources"))
    return plan


def _build(runtime: Runtime, plan: Plan, report: Reporter, rebuild: bool) -> BuildOutcome:
    with report.building(_built_name(plan)) as view:
        return runtime.build(plan, rebuild=rebuild, on_progress=view.update)


# --- serving -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    plan: Plan
    location: str
    build: BuildOutcome
    # The address to open in a browser, or why there is no page there.
    page: str | None = None
    no_page: str | None = None


class ServeFailed(OrchestratorError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def up(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    rebuild: bool,
    force: bool,
    decisions: Mapping[str, bool | None],
    pull: bool | None = False,
) -> Served:
    """pull: fetch the plan's hub model when it is not on disk (True), never (False), or ask (None)."""
    check_api_key(plan)
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = fetched(plan, report, pull)
    plan = checked(plan, report, ("server",), force)
    if plan.speculation.fallback:
        report.note(plan.speculation.fallback)
    runtime.check_port(plan)
    built = build(plan, ex, report, rebuild=rebuild)
    plan = built.plan
    run_host_steps(plan, ex.host, report, decisions)
    if not runtime.state(plan).running:
        check_workers(plan, ex)
    if not runtime.start(plan):
        report.note(f"llama-server is already running with this plan (pid {runtime.state(plan).pid}); kept")
    await_ready(plan, runtime, report)
    page, no_page = web_page(plan, ex.host)
    return Served(plan, runtime.location(plan), built.outcome, page, no_page)


def web_page(plan: Plan, host: Host) -> tuple[str | None, str | None]:
    """What a browser gets at the server's address: the page to open, or why there is none."""
    ui = plan.inputs.settings["ui"]
    if ui == "off":
        return None, "the web page is off (ui: off); the API answers at " + plan.endpoint
    url = plan.base_url + "/"
    status = host.page_status(url)
    if status == 200:
        return url, None
    if ui == "auto":
        return None, (
            f"no web page at {url} (HTTP {status}): this image was built without llama-server's web UI; "
            "serve a built one with --ui DIR"
        )
    return None, f"no web page at {url} (HTTP {status}): {ui} holds no index.html the server can serve"


def await_ready(plan: Plan, runtime: Runtime, report: Reporter) -> None:
    """Wait for /health with the server's latest log line on screen; a server that fails or never gets
    ready is an error carrying the end of its log."""

    def last_line() -> str:
        lines = [line for line in runtime.logs(plan, tail=5) if line.strip()]
        return lines[-1] if lines else ""

    with report.waiting("loading the model") as view:
        last = wait_until_ready(
            lambda: runtime.probe(plan),
            timeout_s=plan.wait_timeout_s,
            on_tick=lambda p, t: view.update(p, t, last_line()),
        )
    if last.readiness != "ready":
        reason = (
            last.detail
            if last.readiness == "failed"
            else f"not ready after {plan.wait_timeout_s} s ({last.detail})"
        )
        tail = "\n".join(runtime.logs(plan, tail=25))
        raise ServeFailed(f"llama-server did not become ready: {reason}; its log ends above", tail)


@dataclass(frozen=True)
class Stopped:
    was_running: bool
    runtime: str


def down(plan: Plan, ex: Executors) -> Stopped:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    return Stopped(runtime.stop(plan), runtime.kind)


@dataclass(frozen=True)
class Status:
    server: ServerState
    endpoint: str
    model: str
    target: str
    profile: str
    runtime: str
    tokens_per_second: dict[str, float]
    # Each RPC worker of the plan, and whether its port still accepts a connection.
    workers: dict[str, bool] = field(default_factory=dict)
    speculation: str = "off"

    @property
    def running(self) -> bool:
        return self.server.running

    def to_dict(self) -> dict[str, Any]:
        data = self.server.to_dict()
        del data["running"]
        return {
            **data,
            "endpoint": self.endpoint,
            "model": self.model,
            "target": self.target,
            "profile": self.profile,
            "runtime": self.runtime,
            "tokens_per_second": self.tokens_per_second,
            "workers": self.workers,
            "speculation": self.speculation,
        }


def status(plan: Plan, ex: Executors) -> Status:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    server = runtime.state(plan)
    return Status(
        server=server,
        endpoint=plan.endpoint,
        model=plan.model.alias,
        target=plan.target,
        profile=plan.profile,
        runtime=runtime.kind,
        tokens_per_second=ex.host.throughput(plan.base_url, api_key(plan)) if server.running else {},
        workers=worker_answers(plan, ex),
        speculation=plan.speculation.describe(),
    )


def logs(plan: Plan, ex: Executors, *, tail: int, follow: bool) -> Iterable[str]:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    return runtime.logs(plan, tail=tail, follow=follow)


# --- preflight -----------------------------------------------------------------------------------


def checked(plan: Plan, report: Reporter, memory_uses: Sequence[str], force: bool) -> Plan:
    """The plan once its model is there (the demo one written when wanted), sound, and fits in memory."""
    if write_demo_model(plan.model, plan.data_dir / "cache"):
        report.note(f"wrote the demo model to {plan.model.path}")
        plan = with_model(plan, refresh(plan.model, plan.data_dir / "cache" / "gguf.json"))
    check_model(plan)
    check_memory(plan, force, memory_uses)
    return plan


def fetched(plan: Plan, report: Reporter, pull: bool | None) -> Plan:
    """The plan with its hub model on disk: pulled when told to, or when asked and the answer is yes.
    Without a terminal and without --pull it stays missing, and the preflight says how to fetch it."""
    ref = next((r for r in KNOWN_MODELS.values() if r.origin == plan.model.origin), None)
    if plan.model.present or ref is None or ref.repo is None or pull is False:
        return plan
    ask = report.ask
    if pull is None and ask is None:
        return plan

    def confirm(listing: PullPlan) -> bool:
        if pull or ask is None:
            return True
        folder = listing.destination
        while not folder.exists():
            folder = folder.parent
        free = shutil.disk_usage(folder).free / 2**30
        return ask(
            f"{plan.model.alias} is not here: pull {listing.repo} ({listing.missing_bytes() / 2**30:.1f} GiB, "
            f"{free:.1f} GiB free at {folder})?"
        )

    settings = plan.inputs.settings
    pulled = pull_model(
        ref.repo,
        settings["models_dir"],
        plan.data_dir,
        PullReport(note=report.note, transfer=report.transfer),
        confirm=confirm,
    )
    model = replace(plan.model, path=Path(pulled.entry.path))
    return with_model(plan, refresh(model, plan.data_dir / "cache" / "gguf.json"))


def check_api_key(plan: Plan) -> None:
    if plan.api_key_file is None:
        return
    if not plan.api_key_file.is_file() or not plan.api_key_file.read_text().strip():
        raise UsageError(f"API key file {plan.api_key_file} is missing or empty; write the key into it")


def run_host_steps(plan: Plan, host: Host, report: Reporter, decisions: Mapping[str, bool | None]) -> None:
    for result in host.run_steps(plan.hooks, decisions=decisions, ask=report.ask):
        report.note(result.message)


# --- one-off programs ----------------------------------------------------------------------------


@contextmanager
def beside_server(
    plan: Plan, runtime: Runtime, report: Reporter, uses: Sequence[str], *, force: bool, stop_server: bool
) -> Iterator[None]:
    """A one-off run while this plan's server may be up: counted beside it, or (--stop-server) with the
    server stopped for the run and started again after it, however the run ends."""
    if not runtime.state(plan).running:
        yield
        return
    if plan.rpc and not stop_server:
        raise UsageError(
            "this plan's server is up and holds its RPC workers (rpc-server serves one client at a time); "
            "pass --stop-server to stop it for this run"
        )
    if not stop_server:
        check_beside_server(plan, force, uses)
        yield
        return
    report.note("stopping the running server for this run (--stop-server); it starts again afterwards")
    runtime.stop(plan)
    try:
        yield
    finally:
        report.note("starting the server again")
        runtime.start(plan)
        await_ready(plan, runtime, report)


def run_prompt(
    plan: Plan, ex: Executors, report: Reporter, *, force: bool = False, stop_server: bool = False
) -> Iterable[str]:
    """The publisher's basic inference (llama-cli), streamed line by line."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    plan = checked(plan, report, ("server",), force)
    plan = build(plan, ex, report, rebuild=False).plan
    with beside_server(plan, runtime, report, ("run",), force=force, stop_server=stop_server):
        yield from runtime.run(plan)


def bench(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    results: Path,
    on_row: Callable[[str, BenchRow, int], None],
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
) -> list[BenchRecord]:
    """Each of the profile's parameter sets once; a set whose rows come back short is run again once.
    Every run is recorded, an incomplete one marked so, with the rows it did measure."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    plan = checked(plan, report, ("bench",), force)
    plan = build(plan, ex, report, rebuild=False).plan
    run_host_steps(plan, ex.host, report, decisions)
    common = _provenance(plan, ex)
    records = []
    with beside_server(plan, runtime, report, ("bench",), force=force, stop_server=stop_server):
        for bench_plan in plan.benches:
            record = _bench_once(runtime, plan, bench_plan, common, on_row)
            if not record.complete and record.error is None:
                report.note(f"{bench_plan.name}: rows {record.missing} never arrived; running it again once")
                record = _bench_once(runtime, plan, bench_plan, common, on_row)
            append_record(results, record)
            records.append(record)
    return records


def _provenance(plan: Plan, ex: Executors) -> dict[str, dict[str, Any]]:
    """What a benchmark record says it ran: the model's bytes, the build, the host."""
    image = plan.build.tag if isinstance(plan.build, ImageBuild) else None
    return {
        "model": {
            "alias": plan.model.alias,
            "file": plan.model.path.name,
            "size": plan.model.size_bytes,
            "sha256": file_sha256(plan.model.path, plan.data_dir / "cache" / "sha256.json"),
            "mtp": plan.model.mtp.describe() if plan.model.mtp else None,
        },
        "build": {
            "image": image,
            "image_id": ex.engine.image_id(image) if image else None,
            "prefix": None if isinstance(plan.build, ImageBuild) else plan.build.prefix,
            "source": plan.source.describe(),
            "commit": plan.source.commit or plan.source.revision,
            "cmake_flags": [f"-D{k}={v}" for k, v in plan.cmake_flags],
        },
        "host": ex.host.summary(plan.inputs.facts),
    }


# --- the serving benchmark --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingComparison:
    off: ServeRecord
    on: ServeRecord

    @property
    def rows(self) -> list[ServeRow]:
        return compare_serving(self.off, self.on)

    @property
    def divergent(self) -> list[str]:
        return divergent(self.off, self.on)

    @property
    def near_ties(self) -> list[Divergence]:
        return [d for d in divergences(self.off, self.on) if d.near_tie]


def bench_serve(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    results: Path,
    clients: Sequence[int],
    decisions: Mapping[str, bool | None],
    force: bool = False,
    stop_server: bool = False,
) -> ServingComparison:
    """The plan's server with speculation off, then on, each started for the run on a free port and
    sent the prompt set at each client count; both recorded, and compared."""
    speculation = plan.speculation
    if not speculation.active:
        why = speculation.fallback or f"the {plan.profile} profile does not speculate"
        raise UsageError(
            f"bench serve compares speculative decoding off and on, and it would be off: {why}; "
            "pass --spec mtp (a model with MTP heads) or --spec ngram-mod"
        )
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    plan = checked(plan, report, ("server",), force)
    plan = build(plan, ex, report, rebuild=False).plan
    run_host_steps(plan, ex.host, report, decisions)
    common = _provenance(plan, ex)
    comparison = uuid.uuid4().hex[:12]
    measured = []
    with beside_server(plan, runtime, report, ("server",), force=force, stop_server=stop_server):
        for wanted in (OFF, speculation.requested):
            variant = for_serving_bench(plan, wanted, ex.host.free_port(plan.publish.host))
            report.note(f"serving benchmark: speculative decoding {variant.speculation.describe()}")
            record = _serve_once(variant, ex, runtime, report, clients, common, comparison)
            append_record(results, record)
            measured.append(record)
    return ServingComparison(measured[0], measured[1])


def _serve_once(
    plan: Plan,
    ex: Executors,
    runtime: Runtime,
    report: Reporter,
    clients: Sequence[int],
    common: Mapping[str, Any],
    comparison: str,
) -> ServeRecord:
    started = time.time()
    samples: list[ServeSample] = []
    rounds: dict[str, float] = {}
    margins: dict[str, list[tuple[int, float]]] = {}
    error = None
    runtime.start(plan)
    try:
        await_ready(plan, runtime, report)
        key = api_key(plan)
        prompts = prompt_set(plan.memory.rows[0].workload.ctx if plan.memory.rows else 4096)
        # One request first, not recorded: the first after a start pays for warm-up.
        _timed_chat(ex.host, plan, key, prompts[0])
        for count in clients:
            for prompt in prompts:
                began = time.monotonic()
                with ThreadPoolExecutor(max_workers=count) as pool:
                    answers = list(
                        pool.map(_timed_chat, *zip(*[(ex.host, plan, key, prompt)] * count, strict=True))
                    )
                rounds[f"{prompt.name}@{count}"] = time.monotonic() - began
                samples += [
                    sample_from_response(prompt.name, count, answer, wall) for answer, wall in answers
                ]
        if not plan.speculation.active:
            for prompt in prompts:
                margins[prompt.name] = token_margins(
                    ex.host.chat(plan.base_url, key, request_body(prompt, margins=True))
                )
    except ServerRequestFailed as failure:
        error = str(failure)
    finally:
        runtime.stop(plan)
    return ServeRecord(
        run_id=uuid.uuid4().hex[:12],
        comparison=comparison,
        started=started,
        finished=time.time(),
        target=plan.target,
        profile=plan.profile,
        speculation=str(plan.speculation.requested) if plan.speculation.active else "off",
        model=dict(common["model"]),
        build=dict(common["build"]),
        runtime={
            "argv": list(plan.server.argv),
            "speculation": plan.speculation.describe(),
            "rpc_workers": [str(w) for w in plan.rpc],
        },
        host=dict(common["host"]),
        samples=samples,
        rounds=rounds,
        error=error,
        margins=margins,
    )


def _timed_chat(host: Host, plan: Plan, key: str | None, prompt: Prompt) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    answer = host.chat(plan.base_url, key, request_body(prompt))
    return answer, time.monotonic() - began


def _bench_once(
    runtime: Runtime,
    plan: Plan,
    bench_plan: BenchPlan,
    common: Mapping[str, Any],
    on_row: Callable[[str, BenchRow, int], None],
) -> BenchRecord:
    expected = bench_plan.expected()
    started, lines, error = time.time(), [], None
    try:
        for line in runtime.bench(plan, bench_plan):
            lines.append(line)
            if line.startswith("{"):
                for row in parse_jsonl(line):
                    on_row(bench_plan.name, row, len(expected))
    except CommandFailed as failure:
        tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
        error = f"{failure}; last output: {tail or 'none'}"
    rows = parse_output("\n".join(lines))
    missing = missing_rows(expected, rows)
    return BenchRecord(
        run_id=uuid.uuid4().hex[:12],
        started=started,
        finished=time.time(),
        complete=not missing and error is None,
        target=plan.target,
        profile=plan.profile,
        bench=bench_plan.name,
        reference=bench_plan.reference,
        model=dict(common["model"]),
        build=dict(common["build"]),
        runtime={
            "argv": list(bench_plan.command.argv),
            "env": dict(bench_plan.command.env),
            "container": plan.container.image if plan.container else None,
            # The machines the model was spread over (none: this one alone).
            "rpc_workers": [str(w) for w in plan.rpc],
        },
        host=dict(common["host"]),
        rows=rows,
        missing=missing,
        error=error,
    )


# --- RPC workers, from the head ----------------------------------------------------------------------


def check_workers(plan: Plan, ex: Executors) -> None:
    """Before the head starts: every worker answers HELLO, with the protocol the head's build speaks."""
    if not plan.rpc:
        return
    image = plan.container.image if plan.container else None
    labels = (ex.engine.image_labels(image) or {}) if image else {}
    head = labels.get(RPC_PROTOCOL_LABEL)
    for endpoint in plan.rpc:
        hello = ex.host.rpc_hello(endpoint)
        if hello.version is None:
            raise UsageError(
                f"RPC worker {endpoint} does not answer ({hello.problem}); start it on that machine: "
                f"orchestrator worker up --target {plan.target} --listen {endpoint}"
            )
        if head is not None and hello.version_text != head:
            raise UsageError(
                f"RPC worker {endpoint} speaks RPC protocol {hello.version_text} but the head's image {image} "
                f"speaks {head}: the worker runs another build; run 'orchestrator worker up --target "
                f"{plan.target} --listen {endpoint}' there with the same source, so it runs {image}"
            )


def worker_answers(plan: Plan, ex: Executors) -> dict[str, bool]:
    """For a running head's status: whether each worker's port still accepts a connection."""
    return {str(endpoint): ex.host.rpc_reachable(endpoint) for endpoint in plan.rpc}


# --- doctor --------------------------------------------------------------------------------------


def doctor_facts(plan: Plan, ex: Executors) -> DoctorFacts:
    """Everything `doctor` judges, probed once: the host, Docker (for container targets), the disk."""
    folder = plan.model.path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    image = plan.container.image if plan.container else None
    engine = ex.engine.versions() if plan.runtime == "container" else None
    # The image's labels only from an engine that answers: doctor reports a missing one, it never trips on it.
    reachable = engine is not None and engine.error is None
    labels = (ex.engine.image_labels(image) or {}) if image and reachable else {}
    return DoctorFacts(
        host=plan.inputs.facts,
        engine=engine,
        disk_free_bytes=shutil.disk_usage(folder).free if folder.exists() else None,
        disk_path=str(folder),
        workers=tuple(_worker_facts(ex.host, endpoint) for endpoint in plan.rpc),
        head_protocol=labels.get(RPC_PROTOCOL_LABEL),
        image_driver=labels.get(DRIVER_LABEL),
    )


def _worker_facts(host: Host, endpoint: Endpoint) -> WorkerFacts:
    hello = host.rpc_hello(endpoint)
    link = host.rpc_link(endpoint)
    return WorkerFacts(
        str(endpoint),
        hello.version_text if hello.version else None,
        hello.problem,
        link.interface,
        link.speed_mbps,
        link.mtu,
    )
