"""Argument parsing and printing only: arguments become keyword calls, errors become one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from orchestrator import __version__
from orchestrator.errors import OrchestratorError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits on its own; here bad input is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


# Flags that map one-to-one onto settings (see orchestrator.settings.FIELDS).
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
    "native",
    "wait_timeout",
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
        "--native",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build and run on the host instead of in a container",
    )
    group.add_argument("--wait-timeout", help="seconds to wait for the server to become healthy")


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


def _decisions(args: argparse.Namespace) -> dict[str, bool | None]:
    return {"drop-page-cache": args.drop_caches, "wired-limit": args.wired_limit}


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name, None) for name in SETTING_FLAGS}


def cmd_targets(*, as_json: bool) -> int:
    from orchestrator import ui
    from orchestrator.targets import CATALOGUE

    targets = list(CATALOGUE.values())
    if as_json:
        ui.print_json(ui.targets_data(targets))
    else:
        ui.console.print(ui.targets_table(targets))
    return 0


def cmd_plan(*, flags: dict[str, object], as_json: bool) -> int:
    from orchestrator import ui
    from orchestrator.resolve import plan_from_flags

    plan = plan_from_flags(flags)
    if as_json:
        ui.print_json(plan.to_dict())
    else:
        for panel in ui.plan_panels(plan):
            ui.console.print(panel)
    return 0


def _reporter() -> Any:
    from orchestrator import ui
    from orchestrator.workflow import Reporter

    return Reporter(
        note=lambda text: ui.console.print(text, highlight=False),
        building=ui.BuildStatus,
        waiting=ui.WaitStatus,
        ask=_ask if sys.stdin.isatty() else None,
    )


def cmd_build(
    *, flags: dict[str, object], rebuild: bool, push: bool, registry: str | None, as_json: bool
) -> int:
    from orchestrator import ui, workflow
    from orchestrator.engine import Engine

    if push and not registry:
        raise UsageError("--push needs --registry, e.g. --registry ghcr.io/OWNER")
    out = ui.console
    if as_json:
        # Progress and notes go to stderr; stdout carries only the JSON.
        ui.console = ui.err_console
    engine = Engine()
    try:
        _plan, outcome = workflow.build(engine, flags, rebuild=rebuild, report=_reporter())
        ui.build_done(outcome)
        pushed, digest = engine.push(outcome.tag, registry) if push and registry else (None, None)
        if pushed:
            ui.console.print(f"pushed {pushed} ({digest})")
    finally:
        ui.console = out
    if as_json:
        ui.print_json(
            {
                "tag": outcome.tag,
                "built": outcome.built,
                "seconds": round(outcome.seconds, 1),
                "pushed": pushed,
                "digest": digest,
                "image_id": engine.image_id(outcome.tag),
            }
        )
    return 0


def cmd_bases_bootstrap(*, family: str, mirror: str, rebuild: bool) -> int:
    from orchestrator import ui
    from orchestrator.bases import base_specs, bootstrap_base
    from orchestrator.engine import Engine
    from orchestrator.settings import load_settings
    from orchestrator.targets import FAMILIES

    if family not in FAMILIES:
        raise UsageError(f"unknown image family {family!r}; choose one of: {', '.join(FAMILIES)}")
    specs = base_specs(FAMILIES[family], mirror)
    engine = Engine()
    engine.require()
    work_dir = load_settings({})["data_dir"]
    for spec in specs:
        with ui.console.status(f"debootstrap {spec.suite} for {spec.tag} ({len(spec.packages)} packages)"):
            outcome = bootstrap_base(engine, spec, work_dir, rebuild=rebuild)
        ui.console.print(
            f"{outcome.tag}: " + (f"made in {outcome.seconds:.0f} s" if outcome.made else "present, kept")
        )
    ui.console.print("use them with --bases local (or bases: local in orchestrator.yaml)")
    return 0


def _container_plan(flags: dict[str, object]) -> Any:
    from orchestrator.workflow import container_plan

    return container_plan(flags)


def _ask(question: str) -> bool:
    from orchestrator import ui

    return ui.console.input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


def cmd_up(
    *,
    flags: dict[str, object],
    rebuild: bool,
    force: bool,
    decisions: dict[str, bool | None],
) -> int:
    from orchestrator import serve, ui, workflow
    from orchestrator.engine import Engine

    try:
        served = workflow.up(
            Engine(),
            flags,
            rebuild=rebuild,
            force=force,
            decisions=decisions,
            report=_reporter(),
        )
    except workflow.ServeFailed as failure:
        ui.err_console.print(failure.log_tail, highlight=False, markup=False)
        raise
    ui.build_done(served.build)
    ui.served(served.plan, served.compose_file, serve.curl_example(served.plan))
    return 0


def _native_plan(flags: dict[str, object]) -> Any:
    from orchestrator.plan import NativeBuild
    from orchestrator.resolve import plan_from_flags

    plan = plan_from_flags(flags)
    return plan if isinstance(plan.build, NativeBuild) else None


def cmd_down(*, flags: dict[str, object]) -> int:
    from orchestrator import serve, ui
    from orchestrator.engine import Engine
    from orchestrator.plan import SERVICE

    native_plan = _native_plan(flags)
    if native_plan is not None:
        from orchestrator import native

        was_running = native.stop(native_plan)
        ui.console.print("stopped llama-server; models are kept" if was_running else "nothing to stop")
        return 0
    plan = _container_plan(flags)
    Engine().require(compose=True)
    compose = serve.compose_for(plan)
    if plan.compose_file is None or not plan.compose_file.exists():
        ui.console.print("nothing to stop: no compose file was written yet")
        return 0
    compose.down()
    ui.console.print(f"stopped and removed the {SERVICE} container; model files and volumes are kept")
    return 0


def cmd_status(*, flags: dict[str, object], as_json: bool) -> int:
    from orchestrator import serve, ui
    from orchestrator.engine import Engine

    native_plan = _native_plan(flags)
    if native_plan is not None:
        return _native_status(native_plan, as_json)
    plan = _container_plan(flags)
    Engine().require(compose=True)
    result = serve.status(plan, serve.compose_for(plan))
    if as_json:
        ui.print_json(result.to_dict())
    else:
        ui.console.print(ui.status_table(result))
    return 0 if result.state == "running" else 3


def _native_status(plan: Any, as_json: bool) -> int:
    from orchestrator import native, ui
    from orchestrator.health import http_readiness

    current = native.state(plan)
    health = http_readiness(plan.endpoint.removesuffix("/v1") + "/health") if current.running else "down"
    data = {
        "state": "running" if current.running else "stopped",
        "health": health,
        "pid": current.pid if current.running else None,
        "endpoint": plan.endpoint,
        "model": plan.model.alias,
        "log": str(current.log),
    }
    if as_json:
        ui.print_json(data)
    else:
        for key, value in data.items():
            ui.console.print(f"{key:>9}: {value}", highlight=False)
    return 0 if current.running else 3


def cmd_logs(*, flags: dict[str, object], follow: bool, tail: int) -> int:
    from orchestrator import serve
    from orchestrator.engine import Engine
    from orchestrator.plan import SERVICE

    native_plan = _native_plan(flags)
    if native_plan is not None:
        from orchestrator import native

        for line in native.log_tail(native_plan, tail):
            print(line, flush=True)
        return 0
    plan = _container_plan(flags)
    Engine().require(compose=True)
    for line in serve.compose_for(plan).logs(SERVICE, tail=None if follow else tail, follow=follow):
        print(line, flush=True)
    return 0


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


def cmd_run(*, flags: dict[str, object], prompt: str, force: bool) -> int:
    from orchestrator import workflow
    from orchestrator.engine import Engine

    for line in workflow.run_prompt(Engine(), flags, prompt, _reporter(), force=force):
        print(line, flush=True)
    return 0


def cmd_bench(
    *,
    flags: dict[str, object],
    action: str,
    npp: str | None,
    ntg: str | None,
    npl: str | None,
    results: str | None,
    out: str | None,
    decisions: dict[str, bool | None],
    force: bool,
) -> int:
    from pathlib import Path

    from orchestrator import bench, ui, workflow
    from orchestrator.engine import Engine
    from orchestrator.plan import BenchOverride
    from orchestrator.settings import load_settings

    results_dir = Path(results) if results else Path(load_settings(flags)["data_dir"]) / "results"
    if action == "report":
        records = bench.latest_per_set(bench.read_records(results_dir))
        if not records:
            raise UsageError(f"no benchmark results in {results_dir}; run 'orchestrator bench' first")
        png = bench.plot(records, Path(out) if out else results_dir / "bench.png")
        summary = results_dir / "bench.md"
        summary.write_text(bench.markdown_report(records))
        ui.console.print(f"plot: {png}\nsummary: {summary}")
        return 0
    override = BenchOverride(_csv_ints(npp, "npp"), _csv_ints(ntg, "ntg"), _csv_ints(npl, "npl"))
    records = workflow.bench(
        Engine(),
        flags,
        override=override if any((override.npp, override.ntg, override.npl)) else None,
        results=results_dir,
        report=_reporter(),
        on_row=ui.bench_row,
        decisions=decisions,
        force=force,
    )
    for record in records:
        ui.console.print(ui.bench_table(record))
    ui.console.print(f"recorded in {results_dir / 'bench.jsonl'}")
    failed = [r for r in records if not r.complete]
    if failed:
        first = failed[0]
        reason = first.error or f"rows {first.missing} never arrived, twice"
        raise OrchestratorError(
            f"benchmark {first.bench} is incomplete ({reason}); kept as incomplete in the results"
        )
    return 0


def _models_dirs(models_dir: str | None) -> tuple[Any, Any]:
    from orchestrator.settings import load_settings

    settings = load_settings({"models_dir": models_dir})
    return settings["models_dir"], settings["data_dir"]


def cmd_model_pull(*, ref: str | None, models_dir: str | None, revision: str | None) -> int:
    from orchestrator import ui
    from orchestrator.pull import PullReport, pull

    directory, data_dir = _models_dirs(models_dir)
    report = PullReport(note=lambda text: ui.console.print(text, highlight=False), transfer=ui.byte_progress)
    pulled = pull(ref, directory, data_dir, report, revision=revision)
    entry = pulled.entry
    ui.console.print(
        f"{entry.name}: {len(pulled.fetched)} fetched, {len(pulled.kept)} already there; size and sha256 "
        f"match the hub; serve it with: orchestrator up --model {entry.path}"
    )
    return 0


def cmd_model_add(*, path: str, name: str | None, models_dir: str | None) -> int:
    from pathlib import Path

    from orchestrator import store, ui

    directory, _data = _models_dirs(models_dir)
    entry = store.add(directory, Path(path), name)
    ui.console.print(
        f"registered {entry.name} ({entry.architecture}, {len(entry.files)} file(s)): {entry.path}"
    )
    return 0


def cmd_model_list(*, models_dir: str | None, as_json: bool) -> int:
    from orchestrator import store, ui

    directory, _data = _models_dirs(models_dir)
    rows = list(store.listing(directory))
    if as_json:
        ui.print_json([{**row.__dict__, "path": str(row.path)} for row in rows])
    elif rows:
        ui.console.print(ui.models_table(rows))
    else:
        ui.console.print(f"no models in {directory}; 'orchestrator model pull' fetches the default one")
    return 0


def cmd_model_verify(*, what: str, models_dir: str | None) -> int:
    from pathlib import Path

    from orchestrator import store, ui

    directory, data_dir = _models_dirs(models_dir)
    entry = store.find(directory, what)
    first = entry.first if entry else Path(what).expanduser().absolute()
    if entry is None:
        entry = next((e for e in store.load(directory).values() if e.first == first), None)
    expected = {f.name: f for f in entry.files} if entry else {}
    total = sum(f.size for f in expected.values() if f.sha256)
    with ui.byte_progress(f"verifying {first.name}", total, 0) as counted:
        verified = store.verify(first, expected, data_dir / "cache" / "sha256.json", counted)
    model = verified.model
    hashes = (
        f"sha256 of {len(verified.hashed)} part(s) match the published ones"
        if verified.hashed
        else "no published sha256 to compare (added locally)"
    )
    ui.console.print(
        f"{first.name}: GGUF v{model.parts[0].version}, {model.arch.name}, {len(model.parts)} part(s) all present "
        f"and consistent, {model.weights_bytes / 2**30:.2f} GiB of tensors within the files; {hashes}"
    )
    return 0


def cmd_model_rm(*, name: str, models_dir: str | None, yes: bool) -> int:
    from orchestrator import store, ui

    directory, _data = _models_dirs(models_dir)
    if yes:
        confirm: Callable[[str], bool] = lambda _q: True  # noqa: E731
    elif sys.stdin.isatty():
        confirm = _ask
    else:
        raise UsageError(f"removing {name} needs a yes: run it on a terminal, or pass --yes")
    deleted = store.remove(directory, name, confirm)
    ui.console.print(
        f"removed {name}" + (f" and deleted {len(deleted)} file(s)" if deleted else "; files kept")
    )
    return 0


def cmd_ci_matrix() -> int:
    import json

    from orchestrator.ci import ci_matrix

    # One line: GitHub Actions reads it from $GITHUB_OUTPUT.
    print(json.dumps(ci_matrix(), separators=(",", ":")))
    return 0


def cmd_doctor(*, flags: dict[str, object], as_json: bool) -> int:
    from orchestrator import ui
    from orchestrator.doctor import diagnose
    from orchestrator.engine import Engine
    from orchestrator.resolve import plan_from_flags
    from orchestrator.workflow import doctor_facts

    plan = plan_from_flags(flags)
    checks = diagnose(plan, doctor_facts(Engine(), plan))
    if as_json:
        ui.print_json({"target": plan.target, "checks": [c.to_dict() for c in checks]})
    else:
        ui.console.print(ui.doctor_table(plan.target, checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orchestrator", description="Build, serve and benchmark Step-3.5-Flash with llama.cpp."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("targets", help="list the machines this tool knows")
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda a: cmd_targets(as_json=a.as_json))

    p = sub.add_parser("plan", help="show what would be built and run, and why, without doing it")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print the plan as JSON")
    p.set_defaults(handler=lambda a: cmd_plan(flags=_flags(a), as_json=a.as_json))

    p = sub.add_parser("build", help="build llama.cpp for the target: its image, or on the host (native)")
    _plan_options(p)
    p.add_argument("--rebuild", action="store_true", help="build even when an identical image exists")
    p.add_argument("--push", action="store_true", help="push the image to --registry after building")
    p.add_argument("--registry", help="registry and namespace to push to, e.g. ghcr.io/OWNER")
    p.add_argument("--json", action="store_true", dest="as_json", help="print the outcome as JSON")
    p.set_defaults(
        handler=lambda a: cmd_build(
            flags=_flags(a), rebuild=a.rebuild, push=a.push, registry=a.registry, as_json=a.as_json
        )
    )

    p = sub.add_parser("up", help="build if needed, load the model and serve it (OpenAI-compatible)")
    _plan_options(p)
    p.add_argument("--rebuild", action="store_true", help="build the image even when an identical one exists")
    p.add_argument("--force", action="store_true", help="go on even when the model will not fit in memory")
    _host_step_options(p)
    p.set_defaults(
        handler=lambda a: cmd_up(flags=_flags(a), rebuild=a.rebuild, force=a.force, decisions=_decisions(a))
    )

    p = sub.add_parser("down", help="stop and remove the server; models and volumes are kept")
    _plan_options(p)
    p.set_defaults(handler=lambda a: cmd_down(flags=_flags(a)))

    p = sub.add_parser("status", help="state, health, endpoint, model, uptime and tokens/s of the server")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda a: cmd_status(flags=_flags(a), as_json=a.as_json))

    p = sub.add_parser("logs", help="the server's log")
    _plan_options(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=200, help="lines to show (default 200)")
    p.set_defaults(handler=lambda a: cmd_logs(flags=_flags(a), follow=a.follow, tail=a.tail))

    p = sub.add_parser("run", help="one answer from llama-cli: the publisher's basic inference")
    _plan_options(p)
    p.add_argument(
        "prompt", nargs="?", default="What's your name?", help="the prompt (default: the publisher's)"
    )
    p.add_argument("--force", action="store_true", help="go on even when the model will not fit in memory")
    p.set_defaults(handler=lambda a: cmd_run(flags=_flags(a), prompt=a.prompt, force=a.force))

    p = sub.add_parser("bench", help="the publisher's llama-batched-bench runs, compared with its tables")
    _plan_options(p)
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "report"),
        default="run",
        help="run (default) the profile's parameter sets, or report: plot and summarise the results",
    )
    p.add_argument("--npp", help="prompt lengths, e.g. 0,512 (overrides the profile's)")
    p.add_argument("--ntg", help="generation lengths, e.g. 32")
    p.add_argument("--npl", help="parallel sequences, e.g. 1")
    p.add_argument("--results", help="results folder (default: <data dir>/results)")
    p.add_argument("--out", help="report: where to write the PNG (default: <results>/bench.png)")
    p.add_argument("--force", action="store_true", help="run even when a set will not fit in memory")
    _host_step_options(p)
    p.set_defaults(
        handler=lambda a: cmd_bench(
            flags=_flags(a),
            action=a.action,
            npp=a.npp,
            ntg=a.ntg,
            npl=a.npl,
            results=a.results,
            out=a.out,
            decisions=_decisions(a),
            force=a.force,
        )
    )

    p = sub.add_parser("ci-matrix", help="the CI image-build matrix from the target catalogue, as JSON")
    p.set_defaults(handler=lambda a: cmd_ci_matrix())

    p = sub.add_parser("doctor", help="check this host for what the target needs, each problem with its fix")
    _plan_options(p)
    p.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    p.set_defaults(handler=lambda a: cmd_doctor(flags=_flags(a), as_json=a.as_json))

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
    m.set_defaults(handler=lambda a: cmd_model_pull(ref=a.ref, models_dir=a.models_dir, revision=a.revision))
    m = model.add_parser("add", help="register a GGUF you already have (checked, never moved)")
    m.add_argument("path", help="the .gguf file (the first part of a split model)")
    m.add_argument("--name", help="name to register it under (default: from the file name)")
    m.add_argument("--models-dir", help="where the registry is kept")
    m.set_defaults(handler=lambda a: cmd_model_add(path=a.path, name=a.name, models_dir=a.models_dir))
    m = model.add_parser("list", help="registered and known models")
    m.add_argument("--models-dir", help="where models are kept")
    m.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    m.set_defaults(handler=lambda a: cmd_model_list(models_dir=a.models_dir, as_json=a.as_json))
    m = model.add_parser(
        "verify", help="GGUF header, split parts, tensor data within the files, sha256 when published"
    )
    m.add_argument("what", help="a registered name or the path of a .gguf file")
    m.add_argument("--models-dir", help="where the registry is kept")
    m.set_defaults(handler=lambda a: cmd_model_verify(what=a.what, models_dir=a.models_dir))
    m = model.add_parser("rm", help="forget a model; a pulled one's files are deleted after asking")
    m.add_argument("name", help="the registered name (see 'orchestrator model list')")
    m.add_argument("--models-dir", help="where models are kept")
    m.add_argument("--yes", action="store_true", help="do not ask")
    m.set_defaults(handler=lambda a: cmd_model_rm(name=a.name, models_dir=a.models_dir, yes=a.yes))

    p = sub.add_parser("bases", help="make local base images without a registry (air-gapped hosts)")
    bases = p.add_subparsers(dest="bases_command", metavar="ACTION", parser_class=_Parser, required=True)
    b = bases.add_parser("bootstrap", help="debootstrap Debian base images and docker import them")
    b.add_argument("--family", default="vulkan", help="image family: vulkan (default) or cuda")
    b.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror")
    b.add_argument("--rebuild", action="store_true", help="make them again even when present")
    b.set_defaults(handler=lambda a: cmd_bases_bootstrap(family=a.family, mirror=a.mirror, rebuild=a.rebuild))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return 2
        return int(args.handler(args))
    except OrchestratorError as exc:
        from orchestrator import ui

        ui.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
