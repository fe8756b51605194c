"""The entry point: the parser (every command listed, the chosen command's family adding its own, see
orchestrator.app.commands), the lock of the folder a command changes, the signals, and errors as one
line (or a JSON object with --json) and an exit code from orchestrator.errors.ExitCode. A family module
turns its arguments into a plan, runs its steps and returns an outcome; the renderer shows it."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from orchestrator import __version__
from orchestrator.app.commands import COMMANDS
from orchestrator.app.options import Parser
from orchestrator.errors import ExitCode, OrchestratorError, Terminated

if TYPE_CHECKING:
    from orchestrator.app.render import Renderer


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """Every command listed with its line; the chosen one's family adds its commands in full."""
    parser = Parser(
        prog="orchestrator", description="Build, serve and benchmark Step-3.5-Flash with llama.cpp."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    family = COMMANDS[chosen][0] if chosen in COMMANDS else None
    if family is not None:
        importlib.import_module(f"orchestrator.app.commands.{family}").register(commands)
    for name, (of, line) in COMMANDS.items():
        if of != family:
            commands.add_parser(name, help=line)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command asked for: the first word that is not an option (the top level takes no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _renderer(as_json: bool) -> Renderer:
    from orchestrator.app.render import Renderer

    return Renderer(as_json=as_json, interactive=sys.stdin.isatty())


def _checked(args: argparse.Namespace) -> None:
    """Bad input answers at once, before any lock is waited for: the command's arguments together (each
    value was checked as it was parsed) and, for a command that makes a plan, its settings (config
    files, environment, flags), the exposure rule and the API key file."""
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    if getattr(args, "makes_plan", False):
        from orchestrator.app.config import check_key_file, check_ui, load_settings, needs_key
        from orchestrator.app.plan_options import flags
        from orchestrator.core.settings import check_settings

        settings = load_settings(flags(args))
        check_settings(settings, key_to_come=needs_key(settings) and _may_make_key(args))
        check_key_file(settings.api_key_file)
        check_ui(settings)


def _may_make_key(args: argparse.Namespace) -> bool:
    """The command makes the missing key itself: told to (--make-api-key), or asking on a terminal."""
    decided = getattr(args, "make_api_key", False)
    return bool(decided) or (decided is None and sys.stdin.isatty())


@contextmanager
def _alone(args: argparse.Namespace, render: Renderer) -> Iterator[None]:
    """The lock of the folder the command changes, for as long as it runs (its output included)."""
    folder_kind = getattr(args, "writes", None)
    if folder_kind is None:
        yield
        return
    from orchestrator.app.config import load_settings
    from orchestrator.app.plan_options import flags
    from orchestrator.executors.lock import exclusive

    if folder_kind == "models":
        folder, what = load_settings({"models_dir": args.models_dir}).models_dir, "the models directory"
    else:
        folder, what = load_settings(flags(args)).data_dir, "the data directory"
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
    try:
        parser = build_parser(_command(argv))
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return ExitCode.USAGE
        from orchestrator.app.session import Session

        _checked(args)
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
