"""`bench`: the publisher's llama-batched-bench runs compared with its tables (batched), their report, and
the serving benchmark of speculative decoding (serving). One parser: `bench [run|report|serve]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.app.commands.bench.batched import BenchDone, BenchReport, bench, bench_row_text, report
from orchestrator.app.commands.bench.owner_report import (
    SHORT_NPL,
    SHORT_NPP,
    SHORT_NTG,
    OwnerReport,
    owner_report,
)
from orchestrator.app.commands.bench.serve_bench import ServingDone, bench_serve
from orchestrator.app.commands.bench.wake import WakeDone, bench_wake
from orchestrator.app.options import (
    Commands,
    allow_cpu_option,
    command,
    decisions,
    force_option,
    host_step_options,
    stop_server_option,
    whole_numbers,
)
from orchestrator.app.plan_options import flags
from orchestrator.app.results import results_dir
from orchestrator.app.session import Session
from orchestrator.core.plan.programs import BenchOverride
from orchestrator.core.serve_bench import parse_sweep
from orchestrator.core.speculation import Speculative
from orchestrator.files import writable_folder


def register(commands: Commands) -> None:
    p = command(
        commands,
        "bench",
        _bench,
        plan=True,
        writes="data",
        as_json="serve: print the comparison as JSON",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "report", "serve"),
        default="run",
        help="run (default) the profile's parameter sets; report: plot and summarise the results; serve: "
        "start the planned server with speculative decoding off, then with each setting of the sweep, send a "
        "fixed prompt set at "
        "temperature 0 with each client count, and compare",
    )
    p.add_argument(
        "--wake",
        action="store_true",
        help="serve: instead, measure the first token after the server's sleep (and awake), and its memory",
    )
    p.add_argument(
        "--sweep",
        type=_sweep,
        default=(),
        help="serve: the settings to measure against speculative decoding off, comma-separated (e.g. "
        "mtp:1,mtp:3 or ngram-mod); default: mtp:1 to mtp:N for a model with N MTP heads, else --spec's",
    )
    p.add_argument(
        "--clients",
        type=whole_numbers("clients", 1, 64),
        default=(1, 4),
        help="serve: concurrent clients per round, e.g. 1,4 (default)",
    )
    p.add_argument(
        "--npp", type=whole_numbers("npp"), help="prompt lengths, e.g. 0,512 (overrides the profile's)"
    )
    p.add_argument("--ntg", type=whole_numbers("ntg"), help="generation lengths, e.g. 32")
    p.add_argument("--npl", type=whole_numbers("npl"), help="parallel sequences, e.g. 1")
    p.add_argument("--results", help="results folder (default: <data dir>/results)")
    p.add_argument("--out", help="report: where to write the PNG (default: <results>/bench.png)")
    force_option(p, "run even when a set will not fit in memory")
    allow_cpu_option(p)
    stop_server_option(p)
    host_step_options(p)
    _register_report(commands)


def _sweep(value: str) -> tuple[Speculative, ...]:
    try:
        return parse_sweep(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _register_report(commands: Commands) -> None:
    # --spec MODE (a plan option) adds the serving benchmark: speculative decoding off, then MODE.
    p = command(commands, "report", _owner_report, plan=True, writes="data", as_json="print the files' paths")
    p.add_argument("--out", help="folder for the report (default: <data dir>/reports)")
    force_option(p, "run even when the short benchmark will not fit in memory")
    stop_server_option(p)
    host_step_options(p)


def _owner_report(session: Session, args: argparse.Namespace) -> OwnerReport:
    plan = session.plan(args, bench_override=BenchOverride(SHORT_NPP, SHORT_NTG, SHORT_NPL))
    out = Path(args.out).expanduser() if args.out else plan.data_dir / "reports"
    return owner_report(
        plan,
        session.executors(),
        session.render.reporter(),
        out=writable_folder(out, "--out"),
        spec=args.speculative not in (None, "off"),
        decisions=decisions(args),
        force=args.force,
        stop_server=args.stop_server,
    )


def _bench(session: Session, args: argparse.Namespace) -> BenchDone | BenchReport | ServingDone | WakeDone:
    if args.action == "report":
        return report(results_dir(flags(args), args.results), Path(args.out) if args.out else None)
    if args.action == "serve":
        return _serve(session, args)
    results = results_dir(flags(args), args.results)
    override = BenchOverride(args.npp, args.ntg, args.npl)
    given = any((override.npp, override.ntg, override.npl))
    plan = session.plan(args, bench_override=override if given else None)
    records = bench(
        plan,
        session.executors(),
        session.render.reporter(),
        results=results,
        on_row=lambda name, row, expected: session.render.note(bench_row_text(name, row, expected)),
        decisions=decisions(args),
        force=args.force,
        stop_server=args.stop_server,
        allow_cpu=args.allow_cpu,
    )
    return BenchDone(tuple(records), results)


def _serve(session: Session, args: argparse.Namespace) -> ServingDone | WakeDone:
    results = results_dir(flags(args), args.results)
    if args.wake:
        record = bench_wake(
            session.plan(args),
            session.executors(),
            session.render.reporter(),
            results=results,
            decisions=decisions(args),
            force=args.force,
            stop_server=args.stop_server,
            allow_cpu=args.allow_cpu,
        )
        return WakeDone(record, results)
    sweep = bench_serve(
        session.plan(args),
        session.executors(),
        session.render.reporter(),
        results=results,
        clients=args.clients,
        decisions=decisions(args),
        force=args.force,
        stop_server=args.stop_server,
        allow_cpu=args.allow_cpu,
        sweep=args.sweep,
    )
    return ServingDone(sweep, results)
