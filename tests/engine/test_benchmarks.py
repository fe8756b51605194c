"""Every benchmark that needs the engine, run in its smoke mode (tiny sizes, one repetition, seconds to a
minute each on the suite's images): each still starts, does its whole path and prints its figures, so
none breaks unnoticed between the runs that read them. The figures themselves are not judged here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import needs_docker

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


# Each script with what its smoke run prints when it went all the way.
SMOKES = {
    "container_tax": [
        "native build (orchestrator build --target cpu --native)",
        "speed_pp: native",
        "speed_tg: native",
    ],
    "load": ["1 client(s): 1 requests, 0 failed"],
    "soak": ["0 outside it)", "restart at"],
    "memory_estimate": ["dense (llama)", "worst deviation"],
    "pull_vs_compile": ["pull ", "compile ", "smoke"],
    "rpc_overhead": ["round 1 local", "round 1 rpc"],
    "speculative": ["tiny step35, 2 MTP heads"],
}


def test_every_benchmark_has_a_smoke_run_here() -> None:
    # cli_startup needs no engine: tests/host/test_benchmarks.py runs it.
    assert set(SMOKES) == {path.stem for path in BENCHMARKS.glob("*.py")} - {"cli_startup"}


@pytest.mark.parametrize(("script", "says"), SMOKES.items(), ids=list(SMOKES))
def test_benchmark_runs_in_its_smoke_mode(script: str, says: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=3600,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    for words in says:
        assert words in done.stdout, done.stdout[-3000:]
