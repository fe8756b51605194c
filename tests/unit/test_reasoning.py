"""Reasoning levels: the setting and its flag, what llama-server is told (--reasoning-effort, and
--reasoning-format so thoughts come back apart from the answer), what `plan` shows, and the refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.reasoning import LEVELS, parse_level, resolve_reasoning
from orchestrator.core.sources import NAMED_SOURCES, UPSTREAM_COMMIT, Source
from tests.planning import fixed_plan
from tests.unit.conftest import Cli


def _after(argv: tuple[str, ...], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize("level", LEVELS)
def test_a_level_reaches_every_targets_server_as_the_templates_reasoning_effort(level: str) -> None:
    for target in ("dgx-spark", "ryzen-ai-max", "mac-studio"):
        plan = fixed_plan(target, "default", {"reasoning": level})
        assert _after(plan.server.argv, "--reasoning-effort") == level
        assert _after(plan.server.argv, "--reasoning-format") == "deepseek"
        assert plan.reasoning.level == level and plan.origin("reasoning") == "flag"
        assert f"level {level} for every request" in plan.reasoning.describe()


def test_unset_the_template_keeps_its_own_default_and_thoughts_still_come_apart() -> None:
    plan = fixed_plan("dgx-spark", "default")
    assert "--reasoning-effort" not in plan.server.argv
    # The pin's default written out: thoughts in reasoning_content / thinking blocks, never in content.
    assert _after(plan.server.argv, "--reasoning-format") == "deepseek"
    assert "the chat template's default level" in plan.reasoning.describe()
    assert "overrides it" in plan.reasoning.describe()


def test_a_model_served_with_a_built_in_template_gets_no_level_and_a_warning() -> None:
    plan = fixed_plan("dgx-spark", "default")
    gemma = replace(plan.inputs.model, chat_template="gemma")
    from orchestrator.core.plan import make_plan

    settings = plan.inputs.settings.with_value("reasoning", "high", "flag --reasoning")
    built_in = make_plan(replace(plan.inputs, model=gemma, settings=settings))
    assert "--reasoning-effort" not in built_in.server.argv
    assert "--reasoning-format" not in built_in.server.argv
    assert any("built-in chat template (no Jinja)" in w for w in built_in.warnings)


def test_a_source_not_read_for_the_flag_is_said_so() -> None:
    fork = fixed_plan("dgx-spark", "default", {"reasoning": "low"}, source=NAMED_SOURCES["stepfun-fork"])
    assert _after(fork.server.argv, "--reasoning-effort") == "low"
    assert any("'stepfun-fork' was not checked" in w for w in fork.warnings)
    # The pinned commit, by name or as a local tree of it, is the one read.
    tree = Source(name="local", kind="local", path=Path("/src/llama.cpp"), revision=UPSTREAM_COMMIT)
    local = fixed_plan("dgx-spark", "default", {"reasoning": "low"}, source=tree)
    assert not any("was not checked" in w for w in local.warnings)
    assert not any(
        "was not checked" in w for w in fixed_plan("dgx-spark", "default", {"reasoning": "low"}).warnings
    )
    unset = resolve_reasoning(None, jinja=True, source="stepfun-fork", source_checked=False)
    assert unset.warning is None and unset.server_args() == ["--reasoning-format", "deepseek"]


@pytest.mark.parametrize("bad", ["extreme", "", "max", "none"])
def test_only_the_three_levels_parse(bad: str) -> None:
    with pytest.raises(ValueError, match="expected one of low, medium, high"):
        parse_level(bad)
    assert parse_level(" HIGH ") == "high"


@pytest.fixture
def orchestrator(cli: Cli, isolated_env: Path) -> Cli:
    return cli


def test_plan_shows_the_level_and_the_format(orchestrator: Cli) -> None:
    out = orchestrator("plan", "--target", "dgx-spark", "--reasoning", "medium", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["reasoning"] == {"level": "medium", "thoughts": "deepseek", "warning": None}
    assert "--reasoning-effort medium" in plan["server"]["shell"]
    shown = orchestrator("plan", "--target", "dgx-spark", "--reasoning", "medium")
    assert "level medium for every request" in shown.stdout


def test_an_unknown_level_is_one_line_and_changes_nothing(orchestrator: Cli, isolated_env: Path) -> None:
    before = sorted(p for p in isolated_env.rglob("*"))
    out = orchestrator("up", "--target", "cpu", "--reasoning", "extreme")
    assert out.returncode == 2
    assert out.stderr == (
        "error: bad value 'extreme' for reasoning in flag --reasoning: expected one of low, medium, high\n"
    )
    assert sorted(p for p in isolated_env.rglob("*")) == before
    # From the environment too: every source is read by the same parser.
    env = orchestrator("plan", "--target", "cpu", env={"ORCHESTRATOR_REASONING": "extreme"})
    assert env.returncode != 0 and "expected one of low, medium, high" in env.stderr
