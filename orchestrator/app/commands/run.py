"""`run`: the publisher's basic inference, one answer from llama-cli in the target's image (or native
install), streamed, beside this plan's server when one is up."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from orchestrator.app.options import Commands, allow_cpu_option, command, force_option, stop_server_option
from orchestrator.app.outcomes import Lines
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.devices import check_devices
from orchestrator.app.steps.preflight import checked
from orchestrator.app.steps.serving import beside_server
from orchestrator.core.devices import LOG_LINE
from orchestrator.core.plan import Plan
from orchestrator.core.plan.programs import SEED_PROMPT


def register(commands: Commands) -> None:
    p = command(
        commands,
        "run",
        _run,
        plan=True,
        writes="data",
    )
    p.add_argument("prompt", nargs="?", default=SEED_PROMPT, help="the prompt (default: the publisher's)")
    force_option(p, "go on even when the model will not fit in memory")
    allow_cpu_option(p)
    stop_server_option(p)


def _run(session: Session, args: argparse.Namespace) -> Lines:
    plan = session.plan(args, prompt=args.prompt or SEED_PROMPT)
    return Lines(
        run_prompt(
            plan,
            session.executors(),
            session.render.reporter(),
            force=args.force,
            stop_server=args.stop_server,
            allow_cpu=args.allow_cpu,
        )
    )


def run_prompt(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    force: bool = False,
    stop_server: bool = False,
    allow_cpu: bool = False,
) -> Iterable[str]:
    """The publisher's basic inference (llama-cli), streamed line by line; then where llama.cpp put the
    model (exit 6 where the target needs its GPU and it was not used, unless allow_cpu)."""
    runtime = ex.runtime(plan)
    runtime.require(serving=False)
    plan = checked(plan, report, ("server",), force)
    plan = build(plan, ex, report, rebuild=False).plan
    with beside_server(plan, runtime, report, ("run",), force=force, stop_server=stop_server):
        lines = []
        for line in runtime.run(plan):
            lines.append(line)
            # The load log (asked for, to read the devices from) is not the answer: warnings and errors
            # are shown, the rest kept for the device check.
            if not LOG_LINE.search(line):
                yield line
    check_devices(plan, lines, report, allow_cpu=allow_cpu)
