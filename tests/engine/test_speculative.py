"""Speculative decoding for real, on the cpu image: a tiny step35 GGUF with three MTP blocks served with
draft-mtp (in the file: off, mtp:1, mtp:2 and mtp:3 in one sweep; and from a sidecar), gemma-3-270m with
n-gram drafting, each through `orchestrator bench serve`, which starts the server with speculation off and
then with each setting and fails when a setting's greedy text differs; the fallback for a model without
heads; the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.serve_bench import NEAR_TIE
from tests.assets import demo_model
from tests.integration import BuiltImage, cli_env, docker, free_port, needs_docker, run_cli
from tests.tiny_gguf import write_tiny_step35

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def _cli(image: BuiltImage, project: str, *args: str) -> tuple[int, str, str]:
    env = cli_env(ORCHESTRATOR_WAIT_TIMEOUT="180", ORCHESTRATOR_PROJECT=project)
    done = run_cli(*args, *image.args, env=env, timeout=1800)
    return done.returncode, done.stdout, done.stderr


def _serve_bench(image: BuiltImage, project: str, model: Path, *extra: str) -> dict[str, object]:
    code, out, err = _cli(
        image, project, "bench", "serve", "--model", str(model), "--results", str(model.parent / "results"),
        "--json", *extra,
    )  # fmt: skip
    assert code == 0, err + out
    data: dict[str, object] = json.loads(out)
    return data


def _folder(tmp_path: Path, name: str = "models") -> Path:
    """A folder the container's user may enter (pytest's own are private to root)."""
    folder = tmp_path / name
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    return folder


def _no_containers_left(project: str) -> None:
    left = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}-bench")
    assert left.stdout.strip() == ""


def _one(data: dict[str, object]) -> dict[str, Any]:
    """The one setting a bench serve measured against off."""
    settings = data["settings"]
    assert isinstance(settings, list) and len(settings) == 1, settings
    one: dict[str, Any] = settings[0]
    return one


def test_mtp_heads_in_the_file_draft_with_one_two_and_three_tokens_and_change_nothing(
    cpu_image: BuiltImage, tmp_path: Path
) -> None:
    model = write_tiny_step35(_folder(tmp_path) / "tiny-step35.gguf", "combined", heads=3)
    data = _serve_bench(cpu_image, "sfo-test-mtp", model, "--spec", "mtp", "--clients", "1,4")
    settings = data["settings"]
    assert data["off"] == "off" and isinstance(settings, list)
    # One run: off, then each draft count the three heads allow, each checked against off.
    assert [s["on"] for s in settings] == ["mtp:1", "mtp:2", "mtp:3"]
    for setting in settings:
        rows = setting["rows"]
        assert [r["clients"] for r in rows] == [1, 4]
        for row in rows:
            # The server drafted with the heads and reported it; the greedy text is the same either way.
            # The heads pass their token through (tests/tiny_gguf.py), so their drafts are accepted.
            assert row["drafted"] > 0 and 0 < row["accepted"] <= row["drafted"]
            assert row["identical"] == row["compared"] == 3 * row["clients"]
        assert setting["divergent"] == []
    _no_containers_left("sfo-test-mtp")
    results = model.parent / "results"
    code, out, err = _cli(cpu_image, "sfo-test-mtp", "bench", "report", "--results", str(results))
    assert code == 0, err
    assert "serving plot:" in out and (results / "serving.png").stat().st_size > 0
    assert "mtp" in (results / "bench.md").read_text()


def test_a_trunk_only_model_drafts_with_its_sidecar(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = write_tiny_step35(_folder(tmp_path) / "tiny-step35.gguf", "trunk-only")
    elsewhere = _folder(tmp_path, "sidecars")
    sidecar = write_tiny_step35(elsewhere / "mtp-tiny-step35.gguf", "mtp-only")
    data = _serve_bench(
        cpu_image,
        "sfo-test-sidecar",
        model,
        "--spec",
        "mtp:1",
        "--draft-model",
        str(sidecar),
        "--clients",
        "1",
    )
    setting = _one(data)
    assert setting["on"] == "mtp:1"
    (row,) = setting["rows"]
    assert row["drafted"] > 0 and row["identical"] == row["compared"] == 3


def test_a_model_without_heads_is_served_without_speculation(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = write_tiny_step35(_folder(tmp_path) / "tiny-step35.gguf", "no-heads")
    project = "sfo-test-no-heads"
    port = str(free_port())
    try:
        code, out, err = _cli(
            cpu_image, project, "up", "--model", str(model), "--spec", "mtp:2", "--port", port
        )
        assert code == 0, err + out
        lines = [line for line in (err + out).splitlines() if "MTP" in line]
        assert lines == ["tiny-step35 has no MTP heads; speculative decoding is off"], err + out
        code, out, err = _cli(cpu_image, project, "status", "--json", "--port", port)
        assert code == 0 and json.loads(out)["state"] == "running", err
    finally:
        _cli(cpu_image, project, "down", "--port", port)


def test_gemma_with_ngram_drafting_gives_the_same_text(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = _folder(tmp_path) / "gemma-3-270m-Q4_K_M.gguf"
    shutil.copyfile(demo_model(), model)
    data = _serve_bench(cpu_image, "sfo-test-ngram", model, "--spec", "ngram-mod", "--clients", "1")
    setting = _one(data)
    (row,) = setting["rows"]
    # Identical, or parted where the two likeliest tokens were within a hair (machine-dependent: gemma's
    # short chat parts 0.072 apart on one machine, 0.21 on a Xeon with AMX, not at all on another);
    # never a wider split.
    ties = setting["near_ties"]
    assert isinstance(ties, list) and all(t["margin"] < NEAR_TIE for t in ties), ties
    assert setting["on"] == "ngram-mod" and setting["divergent"] == [], data
    assert row["identical"] + len(ties) == row["compared"] == 3


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mtp:0", "must be 1 to 8, not '0'"),
        ("mtp:99", "must be 1 to 8, not '99'"),
        ("eagle", "unknown speculative decoding 'eagle'"),
        ("mtp:3", "has 2 MTP heads and drafts one token with each; use mtp:1 to mtp:2"),
    ],
)
def test_bad_speculation_is_one_line_and_starts_nothing(
    cpu_image: BuiltImage, tmp_path: Path, spec: str, says: str
) -> None:
    model = write_tiny_step35(_folder(tmp_path) / "tiny-step35.gguf", "combined")
    project = "sfo-test-bad-spec"
    code, _out, err = _cli(cpu_image, project, "up", "--model", str(model), "--spec", spec)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout.strip() == ""


def test_a_sidecar_of_another_model_is_refused(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = write_tiny_step35(_folder(tmp_path) / "tiny-step35.gguf", "trunk-only")
    other = write_tiny_step35(_folder(tmp_path, "other") / "mtp-other.gguf", "mtp-only", vocab="other")
    code, _out, err = _cli(
        cpu_image,
        "sfo-test-bad-sidecar",
        "up",
        "--model",
        str(model),
        "--draft-model",
        str(other),
        "--spec",
        "mtp",
    )
    assert code == 2 and "has a vocabulary of 263 tokens but tiny-step35 has 269" in err, err
    assert len(err.strip().splitlines()) == 1


def test_the_step37_layout_drafts_with_its_published_mtp_file_name(
    cpu_image: BuiltImage, tmp_path: Path
) -> None:
    # As `model pull step-3.7-flash` leaves it: the model in parts, StepFun's MTP file (named
    # Step3.7-flash-mtp-Q8_0.gguf, three heads) beside it, found by name and used for up to three drafts.
    folder = _folder(tmp_path)
    first = write_tiny_step35(
        folder / "Step-3.7-flash-Q4_K_S.gguf", "trunk-only", heads=3, split_max_tensors=13
    )
    write_tiny_step35(folder / "Step3.7-flash-mtp-Q8_0.gguf", "mtp-only", heads=3)
    data = _serve_bench(cpu_image, "sfo-test-step37", first, "--spec", "mtp:3", "--clients", "1")
    # The owner's own mtp:3 is measured alone against off.
    setting = _one(data)
    assert (data["off"], setting["on"]) == ("off", "mtp:3")
    (row,) = setting["rows"]
    assert row["drafted"] > 0 and row["identical"] == row["compared"]
    assert setting["divergent"] == []
    _no_containers_left("sfo-test-step37")
