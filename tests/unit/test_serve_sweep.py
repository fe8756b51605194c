"""`bench serve` as a sweep: speculative decoding off against mtp:1, mtp:2 and mtp:3 (a model with three
MTP heads) in one run, each setting with its own lossless check, recorded and reported so an owner picks
from numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.app.commands.bench import serve_bench as serving_bench
from orchestrator.app.render import Renderer
from orchestrator.core.serve_bench import (
    ServeRecord,
    ServeSample,
    best_setting,
    group_sweeps,
    parse_sweep,
    serving_markdown,
    sweep_modes,
)
from orchestrator.core.speculation import Speculation, Speculative
from orchestrator.errors import OrchestratorError, UsageError
from tests.fakes import FakeEngine, FakeHost, bench_serve_on_fakes
from tests.tiny_gguf import write_tiny_step35
from tests.unit.conftest import Cli

NO_HOOKS: dict[str, bool | None] = {}


@pytest.fixture
def three_heads(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    return write_tiny_step35(folder / "tiny-step35.gguf", "combined", heads=3)


def _sweep(
    tmp_path: Path,
    model: Path,
    host: FakeHost,
    engine: FakeEngine,
    sweep: tuple[Speculative, ...] = (),
    started: dict[int, str] | None = None,
) -> serving_bench.ServingSweep:
    return bench_serve_on_fakes(
        tmp_path, model, host, engine, sweep=sweep, clients=(1,), started=started, speculative="mtp"
    )


def test_a_model_with_three_heads_is_measured_off_then_with_one_two_and_three_drafts(
    tmp_path: Path, three_heads: Path
) -> None:
    engine, host, started = FakeEngine(), FakeHost(), dict[int, str]()
    sweep = _sweep(tmp_path, three_heads, host, engine, started=started)
    ups = [started[n] for n in sorted(started)]
    assert len(ups) == 4 and engine.names().count("compose_down") == 4
    assert "--spec-type" not in ups[0]
    for n, compose in enumerate(ups[1:], start=1):
        drafts = re.search(r"- --spec-draft-n-max\n\s*- '?(\d+)'?\n", compose)
        assert "draft-mtp" in compose and drafts is not None and drafts[1] == str(n)
    assert [on.speculation for on in sweep.ons] == ["mtp:1", "mtp:2", "mtp:3"]
    # Each setting compared with the same off record, and each checked for the same greedy text.
    assert all(c.off is sweep.off for c in sweep.comparisons)
    assert all(
        c.divergent == [] and c.rows[0].identical == c.rows[0].compared == 3 for c in sweep.comparisons
    )
    lines = (tmp_path / "results" / "bench.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["speculation"] for r in records] == ["off", "mtp:1", "mtp:2", "mtp:3"]
    assert len({r["comparison"] for r in records}) == 1


def test_a_sweep_can_be_named_and_one_the_model_cannot_run_stops_before_any_server(
    tmp_path: Path, three_heads: Path
) -> None:
    engine = FakeEngine()
    sweep = _sweep(tmp_path, three_heads, FakeHost(), engine, parse_sweep("mtp:2"))
    assert [on.speculation for on in sweep.ons] == ["mtp:2"]
    engine = FakeEngine()
    with pytest.raises(UsageError, match=r"--spec mtp:4: .* has 3 MTP heads .* use mtp:1 to mtp:3"):
        _sweep(tmp_path / "b", three_heads, FakeHost(), engine, parse_sweep("mtp:1,mtp:4"))
    assert "compose_up" not in engine.names()


def test_a_setting_whose_text_differs_fails_the_run_by_name(tmp_path: Path, three_heads: Path) -> None:
    sweep = _sweep(tmp_path, three_heads, FakeHost(diverge=True, margin=0.5), FakeEngine())
    done = serving_bench.ServingDone(sweep, tmp_path / "results")
    screen = Renderer(as_json=False, interactive=False)
    with pytest.raises(OrchestratorError, match=r"mtp:1: short-chat, code-edit, long-context; mtp:2: "):
        done.show(screen)


def test_the_default_sweep_follows_the_heads() -> None:
    three = Speculation(Speculative("mtp"), "draft-mtp", 3, heads=3)
    assert [str(m) for m in sweep_modes(three)] == ["mtp:1", "mtp:2", "mtp:3"]
    # The owner's own --spec mtp:N is measured alone.
    two = Speculation(Speculative("mtp", draft_n=2), "draft-mtp", 2, heads=3)
    assert sweep_modes(two, chosen=True) == (Speculative("mtp", draft_n=2),)
    assert [str(m) for m in sweep_modes(two)] == ["mtp:1", "mtp:2", "mtp:3"]
    one = Speculation(Speculative("mtp"), "draft-mtp", 1, heads=1)
    assert sweep_modes(one) == (Speculative("mtp"),)
    ngram = Speculation(Speculative("ngram", ngram="ngram-mod"), "ngram-mod", 64)
    assert sweep_modes(ngram) == (Speculative("ngram", ngram="ngram-mod"),)
    # Named settings win, off dropped (it is always measured first), repeats once.
    assert [str(m) for m in sweep_modes(three, parse_sweep("off,mtp:2,mtp:2"))] == ["mtp:2"]


@pytest.mark.parametrize(
    ("text", "says"), [("off", "at least one setting"), ("mtp:9", "1 to 8"), ("x", "unknown")]
)
def test_a_bad_sweep_says_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sweep(text)


def test_a_bad_sweep_on_the_command_line_is_one_line(cli: Cli, isolated_env: Path) -> None:
    out = cli("bench", "serve", "--target", "cpu", "--sweep", "off")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "at least one setting" in out.stderr


def _record(
    speculation: str, decode: float, text: str = "same", *, started: float = 0.0, **model: object
) -> ServeRecord:
    sample = ServeSample("short-chat", 1, 20, 500.0, 30, decode, 40.0, 12, 9, text, 1.0)
    return ServeRecord(
        run_id=speculation,
        comparison="c1",
        started=started,
        finished=started + 1,
        target="dgx-spark",
        profile="default",
        speculation=speculation,
        model={"name": "step-3.7-flash", "alias": "step-3.7-flash", "file": "a.gguf", **model},
        build={},
        runtime={"speculation": speculation},
        host={},
        samples=[sample],
        rounds={"short-chat@1": 1.0},
    )


def test_the_report_of_a_sweep_names_every_setting_and_the_fastest_lossless_one() -> None:
    off = _record("off", 20.0)
    ons = (
        _record("mtp:1", 28.0, started=1),
        _record("mtp:2", 33.0, "other", started=2),
        _record("mtp:3", 30.0, started=3),
    )
    # mtp:2 is fastest but its text differs (no margins recorded: not a near tie): mtp:3 is the pick.
    assert best_setting(off, ons) is ons[2]
    text = serving_markdown([(off, ons)])
    for setting in ("mtp:1", "mtp:2", "mtp:3"):
        assert f"| {setting} | 1 | 20.00 |" in text
    assert "Fastest at one client with the same greedy text: mtp:3." in text
    assert "step-3.7-flash (a.gguf)" in text
    assert best_setting(off, (_record("mtp:1", 19.0, started=1),)) is None


def test_records_are_grouped_per_run_in_order_and_never_across_models() -> None:
    off, one, two = _record("off", 20.0), _record("mtp:1", 28.0, started=1), _record("mtp:2", 30.0, started=2)
    assert group_sweeps([two, off, one]) == [(off, (one, two))]
    other = _record("mtp:3", 40.0, started=3, name="step-3.5-flash", alias="step-3.5-flash")
    assert group_sweeps([off, one, other]) == []
