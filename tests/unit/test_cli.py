"""The CLI as a user meets it: its exit code and what it prints (in this process, on the recording fakes;
the real process is tests/host/test_cli_process.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.app.commands import COMMANDS
from orchestrator.core.catalogue import CATALOGUE
from tests.unit.conftest import Cli


@pytest.fixture
def orchestrator(cli: Cli, isolated_env: Path) -> Cli:
    return cli


def test_targets_lists_the_four_machines(orchestrator: Cli) -> None:
    out = orchestrator("targets", "--json")
    assert out.returncode == 0, out.stderr
    assert [t["name"] for t in json.loads(out.stdout)] == ["dgx-spark", "ryzen-ai-max", "mac-studio", "cpu"]
    table = orchestrator("targets")
    assert all(name in table.stdout for name in CATALOGUE)


@pytest.mark.parametrize("target", list(CATALOGUE))
def test_plan_json_for_every_target_and_profile(target: str, orchestrator: Cli) -> None:
    for profile in CATALOGUE[target].profile_names:
        out = orchestrator("plan", "--target", target, "--profile", profile, "--json")
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert (plan["target"], plan["profile"]) == (target, profile)
        assert ["target", target, "flag --target"] in plan["settings"]


def test_plan_human_output_shows_origins(orchestrator: Cli, isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("port: 8123\n")
    out = orchestrator("plan", "--target", "cpu", cwd=isolated_env / "work")
    assert out.returncode == 0, out.stderr
    assert "8123" in out.stdout and "orchestrator.yaml" in out.stdout
    assert "127.0.0.1:8123:8443" in out.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["plan", "--target", "tpu"], "unknown target 'tpu'"),
        (["plan", "--target", "cpu", "--profile", "long-context"], "no profile 'long-context'"),
        (["plan", "--target", "cpu", "--source", "https://x.org/l.git@main"], "pin a commit"),
        (["plan", "--target", "cpu", "--source", "./nowhere"], "does not exist"),
        (["plan", "--target", "cpu", "--port", "http"], "whole number"),
        (["plan", "--target", "cpu", "--host", "0.0.0.0"], "without an API key"),
        (["plan", "--bases", "cloud"], "invalid choice"),
        (["plan", "--no-such-flag"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], says: str, orchestrator: Cli) -> None:
    out = orchestrator(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert says in out.stderr


@pytest.mark.parametrize(
    ("flags", "runtime"),
    [(["--native", "--no-native"], "container"), (["--no-native", "--native"], "native")],
)
def test_the_last_of_two_opposite_flags_wins(flags: list[str], runtime: str, orchestrator: Cli) -> None:
    out = orchestrator("plan", "--target", "cpu", *flags, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["runtime"] == runtime


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["plan", "--target", "tpu", "--json"], 2, "unknown target 'tpu'"),
        (["plan", "--no-such-flag", "--json"], 2, "unrecognized arguments"),
        (["status", "--target", "cpu", "--port", "0", "--json"], 2, "expected a port between 1 and 65535"),
    ],
)
def test_errors_with_json_are_a_json_object(args: list[str], code: int, says: str, orchestrator: Cli) -> None:
    out = orchestrator(*args)
    assert out.returncode == code
    error = json.loads(out.stdout)["error"]
    assert error["exit_code"] == code and says in error["message"]
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_config_file_is_one_line_exit_2(orchestrator: Cli, isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("target: cpu\nprofle: default\n")
    out = orchestrator("plan", cwd=isolated_env / "work")
    assert out.returncode == 2 and "did you mean 'profile'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("family", sorted({family for family, _line in COMMANDS.values()}))
def test_each_family_registers_exactly_the_commands_listed_for_it(family: str) -> None:
    import argparse
    import importlib

    from orchestrator.app.options import Parser

    commands = Parser(prog="orchestrator").add_subparsers(parser_class=Parser)
    importlib.import_module(f"orchestrator.app.commands.{family}").register(commands)
    assert isinstance(commands, argparse._SubParsersAction)
    assert set(commands.choices) == {name for name, (of, _line) in COMMANDS.items() if of == family}
    # Each command runs something (a group's actions each do).
    for parser in commands.choices.values():
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        runnable = [p for a in actions for p in a.choices.values()] or [parser]
        assert all(p.get_default("handler") is not None for p in runnable)


def test_a_command_is_parsed_with_its_familys_options_and_help_lists_every_command() -> None:
    from orchestrator.app.cli import build_parser

    listed = build_parser().format_help()
    assert all(name in listed for name in COMMANDS)
    args = build_parser("up").parse_args(["up", "--target", "cpu", "--no-wait"])
    assert args.target == "cpu" and args.wait is False and args.writes == "data"


@pytest.mark.parametrize(("host", "target"), [("dgx-spark", "dgx-spark"), ("cpu-debian", "cpu")])
def test_auto_detects_the_target_from_the_hosts_facts(orchestrator: Cli, host: str, target: str) -> None:
    out = orchestrator("plan", "--json", host=host)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["target"] == target
