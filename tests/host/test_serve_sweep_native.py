"""`bench serve` as a sweep for real on a native build: a tiny step35 with three MTP heads measured off,
then with mtp:1, mtp:2 and mtp:3, each lossless (the same greedy text as off); the report tables each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration import cli_env, run_cli
from tests.tiny_gguf import write_tiny_step35


@pytest.mark.slow
def test_bench_serve_sweeps_one_two_and_three_drafts_losslessly(tmp_path: Path) -> None:
    from tests.assets import llama_cpp_source

    models = tmp_path / "models"
    models.mkdir()
    model = write_tiny_step35(models / "tiny-step35.gguf", "combined", heads=3)
    results = tmp_path / "results"
    env = cli_env(ORCHESTRATOR_WAIT_TIMEOUT="300", ORCHESTRATOR_PROJECT="sfo-test-sweep-native")
    args = ("--target", "cpu", "--native", "--source", str(llama_cpp_source()))
    done = run_cli(
        "bench", "serve", *args, "--model", str(model), "--spec", "mtp", "--clients", "1",
        "--results", str(results), "--json", env=env, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    data = json.loads(done.stdout)
    settings = data["settings"]
    assert data["off"] == "off" and [s["on"] for s in settings] == ["mtp:1", "mtp:2", "mtp:3"]
    for setting in settings:
        (row,) = setting["rows"]
        assert row["drafted"] > 0 and row["identical"] == row["compared"] == 3, setting
        assert setting["divergent"] == []
    report = run_cli("bench", "report", "--results", str(results), env=env)
    assert report.returncode == 0, report.stderr
    summary = (results / "bench.md").read_text()
    assert all(f"| mtp:{n} | 1 |" in summary for n in (1, 2, 3)), summary
    print(summary)
