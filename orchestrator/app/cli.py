"""Argument parsing only: arguments become one `Request`, the request becomes one plan, the plan goes to
the workflow with the real executors, and what comes back goes to the one renderer. Errors become one
line (or a JSON object with --json) and an exit code from orchestrator.errors.ExitCode."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from orchestrator import __version__
from orchestrator.errors import ExitCode, OrchestratorError, Terminated, UsageError

if TYPE_CHECKING:
    from orchestrator.app.outcomes import Outcome
    from orchestrator.app.render import Renderer
    from orchestrator.app.workflow import Executors
    from orchestrator.core.plan import Plan
    from orchestrator.core.plan.programs import BenchOverride


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits on its own; here bad input is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


# Flags that map one-to-one onto settings (see orchestrator.core.settings.FIELDS).
SETTING_FLAGS = (
    "target",
    "profile",
    "source",
    "model",
    "models_dir",
    "host",
    "port",
    "api_key_file",
    "bases",
    "platform",
    "ctx_size",
    "threads",
    "speculative",
    "draft_model",
    "rpc",
    "native",
    "wait_timeout",
    "ui",
)


def _plan_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("plan options (override orchestrator.yaml and ORCHESTRATOR_*)")
    group.add_argument("--target", "-t", help="dgx-spark, ryzen-ai-max, mac-studio, cpu, or auto (default)")
    group.add_argument("--profile", "-p", help="profile of the target (default, long-context)")
    group.add_argument(
        "--source", help="llama.cpp: upstream (default), stepfun-fork, URL@COMMIT, or a directory"
    )
    group.add_argument("--model", "-m", help="GGUF file (first split part) or directory to serve")
    group.add_argument("--models-dir", help="where models are kept")
    group.add_argument("--host", help="address to publish the server on (default 127.0.0.1)")
    group.add_argument("--port", help="port to publish the server on (default 8080)")
    group.add_argument("--api-key-file", help="file with the API key clients must send")
    group.add_argument("--bases", choices=("upstream", "local"), help="base images: upstream or local")
    group.add_argument(
        "--platform",
        choices=("linux/amd64", "linux/arm64"),
        help="image platform, overriding the target's (e.g. a DGX Spark image built on amd64)",
    )
    group.add_argument("--ctx-size", "-c", help="context size, overriding the profile")
    group.add_argument("--threads", help="CPU threads, overriding the profile")
    group.add_argument(
        "--spec",
        dest="speculative",
        help="speculative decoding: off, mtp (the model's MTP heads), mtp:N (N draft tokens), or an n-gram "
        "type such as ngram-mod (overrides the profile's)",
    )
    group.add_argument("--draft-model", help="MTP sidecar GGUF (mtp-*.gguf) for a model without its heads")
    group.add_argument(
        "--rpc",
        help="RPC workers to spread the model over: ADDRESS:PORT[,ADDRESS:PORT...] ('orchestrator worker up' "
        "on each)",
    )
    group.add_argument(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build and run on the host instead of in a container",
    )
    group.add_argument("--wait-timeout", help="seconds to wait for the server to become healthy")
    group.add_argument(
        "--ui",
        help="the web page: auto (the image's own, if it has one), off, or DIR: a built web UI to serve "
        "(read-only)",
    )


def _host_step_options(parser: argparse.ArgumentParser) -> None:
    """The profile's host steps (see 'orchestrator plan'): run, skip, or ask (the default)."""
    parser.add_argument(
        "--drop-caches",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop the page cache before loading where the target wants it (default: ask when not root)",
    )
    parser.add_argument(
        "--raise-wired-limit",
        action=argparse.BooleanOptionalAction,
        default=None,
        dest="wired_limit",
        help="Mac: raise iogpu.wired_limit_mb as the profile needs (default: ask)",
    )


def _writes(parser: argparse.ArgumentParser, folder: str) -> None:
    """This command changes what a folder holds ("data": the data directory, "models": the models
    directory), so it runs alone there: a second one waits, or with --no-wait refuses."""
    parser.set_defaults(writes=folder)
    parser.add_argument(
        "--no-wait",
        action="store_false",
        dest="wait",
        help="when another command is changing the same folder, stop instead of waiting for it",
    )


def _stop_server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stop-server",
        action="store_true",
        help="when this target's server is up and both will not fit in memory: stop it for the run, then "
        "start it again",
    )


def _decisions(args: argparse.Namespace) -> dict[str, bool | None]:
    return {"drop-page-cache": args.drop_caches, "wired-limit": args.wired_limit}


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name, None) for name in SETTING_FLAGS}


@dataclass(frozen=True)
class Session:
    """What every command is handed: the renderer (for progress and questions) and the executors."""

    render: Renderer

    def executors(self) -> Executors:
        from orchestrator.app.workflow import Executors
        from orchestrator.executors.docker import DockerEngine
        from orchestrator.executors.host import LocalHost

        return Executors(DockerEngine(), LocalHost())


def _plan(flags: dict[str, object], override: BenchOverride | None = None, prompt: str | None = None) -> Plan:
    """The command's one plan."""
    from orchestrator.app.inputs import Request, plan_for
    from orchestrator.core.plan.programs import SEED_PROMPT

    return plan_for(Request(flags, bench_override=override, prompt=prompt or SEED_PROMPT))


def cmd_targets(session: Session) -> Outcome:
    from orchestrator.app.outcomes import TargetList
    from orchestrator.core.catalogue import CATALOGUE

    return TargetList(tuple(CATALOGUE.values()))


def cmd_plan(session: Session, *, flags: dict[str, object]) -> Outcome:
    from orchestrator.app.outcomes import PlanShown

    return PlanShown(_plan(flags))


def cmd_build(
    session: Session, *, flags: dict[str, object], rebuild: bool, push: bool, registry: str | None
) -> Outcome:
    from orchestrator.app import workflow
    from orchestrator.app.outcomes import BuildDone

    if push and not registry:
        raise UsageError("--push needs --registry, e.g. --registry ghcr.io/OWNER")
    plan = _plan(flags)
    ex = session.executors()
    built = workflow.build(plan, ex, session.render.reporter(), rebuild=rebuild)
    pushed, digest = ex.engine.push(built.outcome.tag, registry) if push and registry else (None, None)
    image_id = ex.engine.image_id(built.outcome.tag) if built.plan.runtime == "container" else None
    return BuildDone(built.outcome, pushed, digest, image_id)


def cmd_bases_bootstrap(
    session: Session, *, family: str, platform: str, mirror: str, rebuild: bool
) -> Outcome:
    from orchestrator.app.config import load_settings
    from orchestrator.app.outcomes import BasesMade
    from orchestrator.core.bases import base_specs
    from orchestrator.core.catalogue import FAMILIES
    from orchestrator.core.cross import build_platform
    from orchestrator.executors.probe import host_machine

    if family not in FAMILIES:
        raise UsageError(f"unknown image family {family!r}; choose one of: {', '.join(FAMILIES)}")
    # The bases a build for that platform uses on this machine (a cross-compiling family's build base
    # is this machine's own architecture).
    chosen = FAMILIES[family]
    specs = base_specs(
        chosen, platform, mirror, build_platform=build_platform(chosen, platform, host_machine())
    )
    engine = session.executors().engine
    engine.require()
    work_dir = load_settings({})["data_dir"]
    made = []
    for spec in specs:
        with session.render.status(
            f"debootstrap {spec.suite} ({spec.platform}) for {spec.tag} ({len(spec.packages)} packages)"
        ):
            made.append(engine.make_base(spec, work_dir, rebuild=rebuild))
    return BasesMade(tuple(made))


def cmd_up(
    session: Session,
    *,
    flags: dict[str, object],
    rebuild: bool,
    force: bool,
    decisions: dict[str, bool | None],
    pull: bool | None,
) -> Outcome:
    from orchestrator.app import workflow

    plan = _plan(flags)
    return workflow.up(
        plan,
        session.executors(),
        session.render.reporter(),
        rebuild=rebuild,
        force=force,
        pull=pull,
        decisions=decisions,
    )


def cmd_down(session: Session, *, flags: dict[str, object]) -> Outcome:
    from orchestrator.app import workflow

    return workflow.down(_plan(flags), session.executors())


def cmd_status(session: Session, *, flags: dict[str, object]) -> Outcome:
    from orchestrator.app import workflow

    return workflow.status(_plan(flags), session.executors())


def cmd_logs(session: Session, *, flags: dict[str, object], follow: bool, tail: int) -> Outcome:
    from orchestrator.app import workflow
    from orchestrator.app.outcomes import Lines

    return Lines(workflow.logs(_plan(flags), session.executors(), tail=tail, follow=follow))


def cmd_worker_up(session: Session, *, flags: dict[str, object], listen: str) -> Outcome:
    from orchestrator.app import workers
    from orchestrator.core.rpc import parse_listen

    endpoint = parse_listen(listen)
    return workers.worker_up(_plan(flags), endpoint, session.executors(), session.render.reporter())


def cmd_worker(session: Session, *, flags: dict[str, object], action: str) -> Outcome:
    from orchestrator.app import workers

    plan, ex = _plan(flags), session.executors()
    return workers.worker_down(plan, ex) if action == "down" else workers.worker_status(plan, ex)


def cmd_worker_logs(session: Session, *, flags: dict[str, object], follow: bool, tail: int) -> Outcome:
    from orchestrator.app import workers
    from orchestrator.app.outcomes import Lines

    return Lines(workers.worker_logs(_plan(flags), session.executors(), tail=tail, follow=follow))


def _csv_ints(text: str | None, name: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--{name} takes comma-separated whole numbers, e.g. 0,512,2048") from None
    if not values or min(values) < 0:
        raise UsageError(f"--{name} takes comma-separated whole numbers >= 0")
    return values


def cmd_run(
    session: Session, *, flags: dict[str, object], prompt: str, force: bool, stop_server: bool
) -> Outcome:
    from orchestrator.app import workflow
    from orchestrator.app.outcomes import Lines

    plan = _plan(flags, prompt=prompt)
    lines = workflow.run_prompt(
        plan, session.executors(), session.render.reporter(), force=force, stop_server=stop_server
    )
    return Lines(lines)


def _results_dir(flags: dict[str, object], results: str | None) -> Path:
    from orchestrator.app.config import load_settings
    from orchestrator.files import writable_folder

    folder = Path(results) if results else Path(load_settings(flags)["data_dir"]) / "results"
    return writable_folder(folder, "the results folder")


def cmd_bench(
    session: Session,
    *,
    flags: dict[str, object],
    npp: str | None,
    ntg: str | None,
    npl: str | None,
    results: str | None,
    decisions: dict[str, bool | None],
    force: bool,
    stop_server: bool,
) -> Outcome:
    from orchestrator.app import workflow
    from orchestrator.app.outcomes import BenchDone
    from orchestrator.core.plan.programs import BenchOverride

    results_dir = _results_dir(flags, results)
    override = BenchOverride(_csv_ints(npp, "npp"), _csv_ints(ntg, "ntg"), _csv_ints(npl, "npl"))
    plan = _plan(flags, override if any((override.npp, override.ntg, override.npl)) else None)
    records = workflow.bench(
        plan,
        session.executors(),
        session.render.reporter(),
        results=results_dir,
        on_row=session.render.bench_row,
        decisions=decisions,
        force=force,
        stop_server=stop_server,
    )
    return BenchDone(tuple(records), results_dir)


def cmd_bench_report(
    session: Session, *, flags: dict[str, object], results: str | None, out: str | None
) -> Outcome:
    from orchestrator.app.outcomes import BenchReport
    from orchestrator.app.results import plot, plot_serving, read_records, read_serving_pairs
    from orchestrator.core.bench import latest_per_set, markdown_report
    from orchestrator.core.serve_bench import serving_markdown
    from orchestrator.files import write_atomic

    results_dir = _results_dir(flags, results)
    records = latest_per_set(read_records(results_dir))
    serving = read_serving_pairs(results_dir)
    if not records and not serving:
        raise UsageError(
            f"no benchmark results in {results_dir}; run 'orchestrator bench' or 'orchestrator bench serve' first"
        )
    png = plot(records, Path(out) if out else results_dir / "bench.png") if records else None
    serving_png = plot_serving(serving[-4:], results_dir / "serving.png") if serving else None
    summary = results_dir / "bench.md"
    text = (markdown_report(records) if records else "") + (serving_markdown(serving) if serving else "")
    write_atomic(summary, text)
    return BenchReport(png, summary, serving_png)


def cmd_bench_serve(
    session: Session,
    *,
    flags: dict[str, object],
    clients: str | None,
    results: str | None,
    decisions: dict[str, bool | None],
    force: bool,
    stop_server: bool,
) -> Outcome:
    from orchestrator.app import workflow
    from orchestrator.app.outcomes import ServingDone

    results_dir = _results_dir(flags, results)
    counts = _csv_ints(clients, "clients") or (1, 4)
    if any(c < 1 or c > 64 for c in counts):
        raise UsageError(f"--clients {clients}: each count must be 1 to 64")
    comparison = workflow.bench_serve(
        _plan(flags),
        session.executors(),
        session.render.reporter(),
        results=results_dir,
        clients=counts,
        decisions=decisions,
        force=force,
        stop_server=stop_server,
    )
    return ServingDone(comparison, results_dir)


def _models_dirs(models_dir: str | None) -> tuple[Path, Path]:
    from orchestrator.app.config import load_settings
    from orchestrator.files import readable_folder

    settings = load_settings({"models_dir": models_dir})
    return readable_folder(settings["models_dir"], "the models directory"), settings["data_dir"]


def cmd_model_pull(
    session: Session, *, ref: str | None, models_dir: str | None, revision: str | None, mtp: bool = True
) -> Outcome:
    from orchestrator.app.outcomes import ModelPulled
    from orchestrator.models.pull import PullReport, pull

    directory, data_dir = _models_dirs(models_dir)
    report = PullReport(note=session.render.note, transfer=session.render.byte_progress)
    return ModelPulled(pull(ref, directory, data_dir, report, revision=revision, mtp=mtp))


def cmd_model_add(session: Session, *, path: str, name: str | None, models_dir: str | None) -> Outcome:
    from orchestrator.app.outcomes import ModelAdded
    from orchestrator.models import store

    directory, _data = _models_dirs(models_dir)
    return ModelAdded(store.add(directory, Path(path), name))


def cmd_model_list(session: Session, *, models_dir: str | None) -> Outcome:
    from orchestrator.app.outcomes import ModelListing
    from orchestrator.models import store

    directory, _data = _models_dirs(models_dir)
    return ModelListing(tuple(store.listing(directory)), directory)


def cmd_model_verify(session: Session, *, what: str, models_dir: str | None) -> Outcome:
    from orchestrator.app.outcomes import ModelVerified
    from orchestrator.models import store

    directory, data_dir = _models_dirs(models_dir)
    entry = store.find(directory, what)
    first = entry.first if entry else Path(what).expanduser().absolute()
    if entry is None:
        entry = next((e for e in store.load(directory).values() if e.first == first), None)
    expected = {f.name: f for f in entry.files} if entry else {}
    total = sum(f.size for f in expected.values() if f.sha256)
    with session.render.byte_progress(f"verifying {first.name}", total, 0) as counted:
        verified = store.verify(first, expected, data_dir / "cache" / "sha256.json", counted)
    return ModelVerified(first, verified)


def cmd_model_rm(session: Session, *, name: str, models_dir: str | None, yes: bool) -> Outcome:
    from orchestrator.app.outcomes import ModelRemoved
    from orchestrator.models import store

    directory, _data = _models_dirs(models_dir)
    confirm: Callable[[str], bool]
    if yes:
        confirm = lambda _q: True  # noqa: E731
    elif session.render.can_ask:
        confirm = session.render.ask
    else:
        raise UsageError(f"removing {name} needs a yes: run it on a terminal, or pass --yes")
    return ModelRemoved(name, tuple(store.remove(directory, name, confirm)))


def cmd_ci_matrix(session: Session) -> Outcome:
    from orchestrator.app.outcomes import CiMatrix
    from orchestrator.core.ci import ci_matrix

    return CiMatrix(ci_matrix())


def cmd_doctor(session: Session, *, flags: dict[str, object]) -> Outcome:
    from orchestrator.app.outcomes import Diagnosis
    from orchestrator.app.workflow import doctor_facts
    from orchestrator.core.doctor import diagnose

    plan = _plan(flags)
    return Diagnosis(plan.target, tuple(diagnose(plan, doctor_facts(plan, session.executors()))))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orchestrator", description="Build, serve and benchmark Step-3.5-Flash with llama.cpp."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("targets", help="list the machines this tool knows")
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda s, a: cmd_targets(s))

    p = sub.add_parser("plan", help="show what would be built and run, and why, without doing it")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print the plan as JSON")
    p.set_defaults(handler=lambda s, a: cmd_plan(s, flags=_flags(a)))

    p = sub.add_parser("build", help="build llama.cpp for the target: its image, or on the host (native)")
    _plan_options(p)
    _writes(p, "data")
    p.add_argument("--rebuild", action="store_true", help="build even when an identical image exists")
    p.add_argument("--push", action="store_true", help="push the image to --registry after building")
    p.add_argument("--registry", help="registry and namespace to push to, e.g. ghcr.io/OWNER")
    p.add_argument("--json", action="store_true", dest="as_json", help="print the outcome as JSON")
    p.set_defaults(
        handler=lambda s, a: cmd_build(
            s, flags=_flags(a), rebuild=a.rebuild, push=a.push, registry=a.registry
        )
    )

    p = sub.add_parser("up", help="build if needed, load the model and serve it (OpenAI-compatible)")
    _plan_options(p)
    _writes(p, "data")
    p.add_argument("--rebuild", action="store_true", help="build the image even when an identical one exists")
    p.add_argument("--force", action="store_true", help="go on even when the model will not fit in memory")
    p.add_argument(
        "--pull",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fetch the target's model from the hub when it is not on disk (default: ask on a terminal)",
    )
    _host_step_options(p)
    p.set_defaults(
        handler=lambda s, a: cmd_up(
            s, flags=_flags(a), rebuild=a.rebuild, force=a.force, decisions=_decisions(a), pull=a.pull
        )
    )

    p = sub.add_parser("down", help="stop and remove the server; models and volumes are kept")
    _plan_options(p)
    _writes(p, "data")
    p.set_defaults(handler=lambda s, a: cmd_down(s, flags=_flags(a)))

    p = sub.add_parser("status", help="state, health, endpoint, model, uptime and tokens/s of the server")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda s, a: cmd_status(s, flags=_flags(a)))

    p = sub.add_parser("logs", help="the server's log")
    _plan_options(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=200, help="lines to show (default 200)")
    p.set_defaults(handler=lambda s, a: cmd_logs(s, flags=_flags(a), follow=a.follow, tail=a.tail))

    p = sub.add_parser("run", help="one answer from llama-cli: the publisher's basic inference")
    _plan_options(p)
    _writes(p, "data")
    p.add_argument(
        "prompt", nargs="?", default="What's your name?", help="the prompt (default: the publisher's)"
    )
    p.add_argument("--force", action="store_true", help="go on even when the model will not fit in memory")
    _stop_server_option(p)
    p.set_defaults(
        handler=lambda s, a: cmd_run(
            s, flags=_flags(a), prompt=a.prompt, force=a.force, stop_server=a.stop_server
        )
    )

    p = sub.add_parser(
        "bench",
        help="the publisher's llama-batched-bench runs, compared with its tables; serve: the server with "
        "speculative decoding off and on",
    )
    _plan_options(p)
    _writes(p, "data")
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "report", "serve"),
        default="run",
        help="run (default) the profile's parameter sets; report: plot and summarise the results; serve: "
        "start the planned server with speculative decoding off, then on, send a fixed prompt set at "
        "temperature 0 with each client count, and compare",
    )
    p.add_argument("--clients", help="serve: concurrent clients per round, e.g. 1,4 (default)")
    p.add_argument("--json", action="store_true", dest="as_json", help="serve: print the comparison as JSON")
    p.add_argument("--npp", help="prompt lengths, e.g. 0,512 (overrides the profile's)")
    p.add_argument("--ntg", help="generation lengths, e.g. 32")
    p.add_argument("--npl", help="parallel sequences, e.g. 1")
    p.add_argument("--results", help="results folder (default: <data dir>/results)")
    p.add_argument("--out", help="report: where to write the PNG (default: <results>/bench.png)")
    p.add_argument("--force", action="store_true", help="run even when a set will not fit in memory")
    _stop_server_option(p)
    _host_step_options(p)
    p.set_defaults(
        handler=lambda s, a: (
            cmd_bench_report(s, flags=_flags(a), results=a.results, out=a.out)
            if a.action == "report"
            else cmd_bench_serve(
                s,
                flags=_flags(a),
                clients=a.clients,
                results=a.results,
                decisions=_decisions(a),
                force=a.force,
                stop_server=a.stop_server,
            )
            if a.action == "serve"
            else cmd_bench(
                s,
                flags=_flags(a),
                npp=a.npp,
                ntg=a.ntg,
                npl=a.npl,
                results=a.results,
                decisions=_decisions(a),
                force=a.force,
                stop_server=a.stop_server,
            )
        )
    )

    p = sub.add_parser("ci-matrix", help="the CI image-build matrix from the target catalogue, as JSON")
    p.set_defaults(handler=lambda s, a: cmd_ci_matrix(s))

    p = sub.add_parser("doctor", help="check this host for what the target needs, each problem with its fix")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda s, a: cmd_doctor(s, flags=_flags(a)))

    p = sub.add_parser("worker", help="an RPC worker on this machine: lends its memory and GPU to a head")
    worker = p.add_subparsers(dest="worker_command", required=True, metavar="up|down|status|logs")
    w = worker.add_parser(
        "up", help="run llama.cpp's rpc-server from the target's image on one private address of this machine"
    )
    _plan_options(w)
    w.add_argument(
        "--listen",
        required=True,
        help="ADDRESS[:PORT] on the direct link (default port 50052); never 0.0.0.0 or a public address: "
        "rpc-server has no authentication",
    )
    _writes(w, "data")
    w.set_defaults(handler=lambda s, a: cmd_worker_up(s, flags=_flags(a), listen=a.listen))
    w = worker.add_parser("down", help="stop and remove this machine's worker; its tensor cache is kept")
    _plan_options(w)
    _writes(w, "data")
    w.set_defaults(handler=lambda s, a: cmd_worker(s, flags=_flags(a), action="down"))
    w = worker.add_parser("status", help="whether this machine's worker runs and answers")
    _plan_options(w)
    w.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    w.set_defaults(handler=lambda s, a: cmd_worker(s, flags=_flags(a), action="status"))
    w = worker.add_parser("logs", help="the worker's log")
    _plan_options(w)
    w.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    w.add_argument("--tail", type=int, default=200, help="lines to show (default 200)")
    w.set_defaults(handler=lambda s, a: cmd_worker_logs(s, flags=_flags(a), follow=a.follow, tail=a.tail))

    p = sub.add_parser("model", help="pull, add, list, verify and remove models")
    model = p.add_subparsers(dest="model_command", metavar="ACTION", parser_class=_Parser, required=True)
    m = model.add_parser("pull", help="download a GGUF (every split part) from the hub, resumable, verified")
    m.add_argument(
        "ref",
        nargs="?",
        help="owner/name[:QUANT] on the hub (default: stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S); "
        "HF_TOKEN and HF_ENDPOINT are honoured",
    )
    m.add_argument("--revision", help="branch, tag or commit (default: main)")
    m.add_argument("--models-dir", help="where models are kept")
    m.add_argument(
        "--no-mtp",
        action="store_false",
        dest="mtp",
        help="leave out the repository's MTP sidecar (mtp-*.gguf: the heads for speculative decoding)",
    )
    _writes(m, "models")
    m.set_defaults(
        handler=lambda s, a: cmd_model_pull(
            s, ref=a.ref, models_dir=a.models_dir, revision=a.revision, mtp=a.mtp
        )
    )
    m = model.add_parser("add", help="register a GGUF you already have (checked, never moved)")
    m.add_argument("path", help="the .gguf file (the first part of a split model)")
    m.add_argument("--name", help="name to register it under (default: from the file name)")
    m.add_argument("--models-dir", help="where the registry is kept")
    _writes(m, "models")
    m.set_defaults(handler=lambda s, a: cmd_model_add(s, path=a.path, name=a.name, models_dir=a.models_dir))
    m = model.add_parser("list", help="registered and known models")
    m.add_argument("--models-dir", help="where models are kept")
    m.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    m.set_defaults(handler=lambda s, a: cmd_model_list(s, models_dir=a.models_dir))
    m = model.add_parser(
        "verify", help="GGUF header, split parts, tensor data within the files, sha256 when published"
    )
    m.add_argument("what", help="a registered name or the path of a .gguf file")
    m.add_argument("--models-dir", help="where the registry is kept")
    m.set_defaults(handler=lambda s, a: cmd_model_verify(s, what=a.what, models_dir=a.models_dir))
    m = model.add_parser("rm", help="forget a model; a pulled one's files are deleted after asking")
    m.add_argument("name", help="the registered name (see 'orchestrator model list')")
    m.add_argument("--models-dir", help="where models are kept")
    m.add_argument("--yes", action="store_true", help="do not ask")
    _writes(m, "models")
    m.set_defaults(handler=lambda s, a: cmd_model_rm(s, name=a.name, models_dir=a.models_dir, yes=a.yes))

    p = sub.add_parser("bases", help="make local base images without a registry (air-gapped hosts)")
    bases = p.add_subparsers(dest="bases_command", metavar="ACTION", parser_class=_Parser, required=True)
    b = bases.add_parser("bootstrap", help="debootstrap Debian base images and docker import them")
    b.add_argument("--family", default="vulkan", help="image family: vulkan (default) or cuda")
    b.add_argument(
        "--platform",
        default="linux/amd64",
        choices=("linux/amd64", "linux/arm64"),
        help="architecture of the bases (linux/arm64 on an amd64 machine runs under QEMU)",
    )
    b.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror")
    b.add_argument("--rebuild", action="store_true", help="make them again even when present")
    _writes(b, "data")
    b.set_defaults(
        handler=lambda s, a: cmd_bases_bootstrap(
            s, family=a.family, platform=a.platform, mirror=a.mirror, rebuild=a.rebuild
        )
    )

    return parser


def _renderer(as_json: bool) -> Renderer:
    from orchestrator.app.render import Renderer

    return Renderer(as_json=as_json, interactive=sys.stdin.isatty())


@contextmanager
def _alone(args: argparse.Namespace, render: Renderer) -> Iterator[None]:
    """The lock of the folder the command changes, for as long as it runs (its output included)."""
    folder_kind = getattr(args, "writes", None)
    if folder_kind is None:
        yield
        return
    from orchestrator.app.config import load_settings
    from orchestrator.executors.lock import exclusive

    if folder_kind == "models":
        folder, what = load_settings({"models_dir": args.models_dir})["models_dir"], "the models directory"
    else:
        folder, what = load_settings(_flags(args))["data_dir"], "the data directory"
    with exclusive(folder, wait=args.wait, on_wait=render.note, what=what):
        yield


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that even a parse error answers in JSON.
    as_json = "--json" in argv
    # SIGTERM unwinds like Ctrl-C: every `finally` and context manager on the way runs. SIGINT is set
    # too, since a process started in the background inherits it ignored: `kill -INT` still stops it.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return ExitCode.USAGE
        render = _renderer(as_json)
        with _alone(args, render):
            outcome = args.handler(Session(render), args)
            return int(render.show(outcome))
    except OrchestratorError as exc:
        _renderer(as_json).error(exc)
        return int(exc.exit_code)
    except Terminated:
        return _interrupted(as_json, ExitCode.TERMINATED, signal.SIGTERM)
    except KeyboardInterrupt:
        return _interrupted(as_json, ExitCode.INTERRUPTED, signal.SIGINT)


def _interrupted(as_json: bool, code: ExitCode, signum: int) -> int:
    from orchestrator.executors.children import stop_children

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_children(signum)
    _renderer(as_json).interrupted(code)
    return int(code)
