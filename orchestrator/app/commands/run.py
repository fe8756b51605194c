"""`run`: the publisher's basic inference, one answer from llama-cli in the target's image (or native
install), streamed, beside this plan's server when one is up."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from orchestrator.app.options import Commands, command, force_option, stop_server_option
from orchestrator.app.outcomes import Lines
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.preflight import checked
from orchestrator.app.steps.serving import beside_server
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
        )
    )


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
