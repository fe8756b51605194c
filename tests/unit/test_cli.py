"""The CLI as a user meets it: a real process, its exit code, and what it prints."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.app.commands import COMMANDS
from orchestrator.core.catalogue import CATALOGUE
from tests.integration import run_cli


def orchestrator(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, cwd=cwd, timeout=60)


@pytest.fixture
def clean_env(isolated_env: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["COLUMNS"] = "200"
    return env


def test_targets_lists_the_four_machines(clean_env: dict[str, str]) -> None:
    out = orchestrator("targets", "--json", env=clean_env)
    assert out.returncode == 0, out.stderr
    assert [t["name"] for t in json.loads(out.stdout)] == ["dgx-spark", "ryzen-ai-max", "mac-studio", "cpu"]
    table = orchestrator("targets", env=clean_env)
    assert all(name in table.stdout for name in CATALOGUE)


@pytest.mark.parametrize("target", list(CATALOGUE))
def test_plan_json_for_every_target_and_profile(target: str, clean_env: dict[str, str]) -> None:
    for profile in CATALOGUE[target].profile_names:
        out = orchestrator("plan", "--target", target, "--profile", profile, "--json", env=clean_env)
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert (plan["target"], plan["profile"]) == (target, profile)
        assert ["target", target, "flag --target"] in plan["settings"]


def test_plan_human_output_shows_origins(clean_env: dict[str, str], isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("port: 8123\n")
    out = orchestrator("plan", "--target", "cpu", env=clean_env, cwd=isolated_env / "work")
    assert out.returncode == 0, out.stderr
    assert "8123" in out.stdout and "orchestrator.yaml" in out.stdout
    assert "127.0.0.1:8123:8443" in out.stdout


def test_auto_detects_this_host(clean_env: dict[str, str]) -> None:
    out = orchestrator("plan", "--json", env=clean_env)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    # Decided here from what any person would look at: no nvidia-smi, no AMD KFD, Linux.
    plain_linux = (
        platform.system() == "Linux"
        and shutil.which("nvidia-smi") is None
        and not Path("/sys/class/kfd/kfd/topology/nodes").exists()
    )
    if not plain_linux:
        pytest.skip("this host has a GPU driver or is not Linux; the expectation below is for plain Linux")
    assert plan["target"] == "cpu"
    assert plan["detection"] == "no supported GPU found; serving on the CPU"


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
def test_bad_input_is_one_line_exit_2(args: list[str], says: str, clean_env: dict[str, str]) -> None:
    out = orchestrator(*args, env=clean_env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert says in out.stderr


@pytest.mark.parametrize(
    ("flags", "runtime"),
    [(["--native", "--no-native"], "container"), (["--no-native", "--native"], "native")],
)
def test_the_last_of_two_opposite_flags_wins(
    flags: list[str], runtime: str, clean_env: dict[str, str]
) -> None:
    out = orchestrator("plan", "--target", "cpu", *flags, "--json", env=clean_env)
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
def test_errors_with_json_are_a_json_object(
    args: list[str], code: int, says: str, clean_env: dict[str, str]
) -> None:
    out = orchestrator(*args, env=clean_env)
    assert out.returncode == code
    error = json.loads(out.stdout)["error"]
    assert error["exit_code"] == code and says in error["message"]
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_config_file_is_one_line_exit_2(clean_env: dict[str, str], isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("target: cpu\nprofle: default\n")
    out = orchestrator("plan", env=clean_env, cwd=isolated_env / "work")
    assert out.returncode == 2 and "did you mean 'profile'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from orchestrator.app.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('python_on_whales', 'huggingface_hub', 'gguf', 'rich', 'yaml') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "HEAVY="


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


def test_the_default_port_is_taken_for_the_whole_run() -> None:
    """As on a machine whose user's server is up: a test that forgets --port is refused at once."""
    from orchestrator.executors.host import LocalHost

    assert not LocalHost().address_free("127.0.0.1", 8080)
