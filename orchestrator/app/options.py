"""The parser pieces command modules share, and what their values become: the plan options (see
orchestrator.app.plan_options), the host-step and --stop-server switches, the folder a command changes
(and so locks), --json, and lists of numbers. A command module adds its parser with `command` and
declares only its own options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NoReturn, TypeAlias

from orchestrator.app.plan_options import plan_options
from orchestrator.errors import UsageError

if TYPE_CHECKING:
    from orchestrator.app.outcomes import Outcome
    from orchestrator.app.session import Session

Handler = Callable[["Session", argparse.Namespace], "Outcome"]
# The parser a command joins (argparse names no public type for it; generic only to the type checker).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Folder = Literal["data", "models"]


class Parser(argparse.ArgumentParser):
    """argparse prints usage and exits on its own; here bad input is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


def command(
    commands: Commands,
    name: str,
    handler: Handler,
    *,
    help: str | None = None,
    plan: bool = False,
    writes: Folder | None = None,
    as_json: str | None = None,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> argparse.ArgumentParser:
    """A command's parser: plan options when it makes a plan, the lock of the folder it changes
    (writes), --json when it can print JSON (as_json: the help text), what to check of its arguments
    together before any lock is waited for (check; each value is checked as it is parsed), and the
    function it runs. A
    command of its own (`up`) has its one-line help in orchestrator.app.commands.COMMANDS; one of a group
    (`model pull`) gives it here."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    if plan:
        plan_options(parser)
    if writes is not None:
        _writes(parser, writes)
    if as_json is not None:
        parser.add_argument("--json", action="store_true", dest="as_json", help=as_json)
    parser.set_defaults(handler=handler, check=check, makes_plan=plan)
    return parser


def group(commands: Commands, name: str, metavar: str) -> Commands:
    """A command with actions of its own (model pull, worker up, ...): the parser its actions join."""
    parser = commands.add_parser(name)
    inner: Commands = parser.add_subparsers(
        dest=f"{name}_command", metavar=metavar, parser_class=Parser, required=True
    )
    return inner


def host_step_options(parser: argparse.ArgumentParser) -> None:
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


def decisions(args: argparse.Namespace) -> dict[str, bool | None]:
    return {"drop-page-cache": args.drop_caches, "wired-limit": args.wired_limit}


def _writes(parser: argparse.ArgumentParser, folder: Folder) -> None:
    """This command changes what a folder holds ("data": the data directory, "models": the models
    directory), so it runs alone there: a second one waits, or with --no-wait refuses."""
    parser.set_defaults(writes=folder)
    parser.add_argument(
        "--no-wait",
        action="store_false",
        dest="wait",
        help="when another command is changing the same folder, stop instead of waiting for it",
    )


def stop_server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stop-server",
        action="store_true",
        help="when this target's server is up and both will not fit in memory: stop it for the run, then "
        "start it again",
    )


def force_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--force", action="store_true", help=help)


def allow_cpu_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="go on (with a warning) when llama.cpp puts the model on the CPU where the target needs its GPU",
    )


def whole_numbers(name: str, low: int = 0, high: int | None = None) -> Callable[[str], tuple[int, ...]]:
    """An option's type: comma-separated whole numbers (from low to high), checked as it is parsed."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"--{name} takes comma-separated whole numbers, e.g. 0,512,2048") from None
        if high is not None and any(v < low or v > high for v in values):
            raise UsageError(f"--{name} {text}: each count must be {low} to {high}")
        if not values or min(values) < low:
            raise UsageError(f"--{name} takes comma-separated whole numbers >= {low}")
        return values

    return parse
