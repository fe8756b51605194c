"""Every workflow is valid GitHub Actions, by the two programs that know: actionlint (whose binary comes in
its wheel, and knows which action versions run on a retired runtime, and runs shellcheck on each `run:`)
and check-jsonschema against the published workflow schema (vendored in its package: works offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = Path(sys.executable).with_name("actionlint")
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def test_the_workflows_are_the_three_this_checks() -> None:
    assert {w.name for w in WORKFLOWS} >= {"images.yml", "tests.yml", "builds.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_workflow_matches_the_published_schema(workflow: Path) -> None:
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    done = subprocess.run([str(ACTIONLINT), str(workflow)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_actionlint_flags_an_action_on_a_retired_runtime(tmp_path: Path) -> None:
    """The check above can fail: the same workflow on the node20 actions it used to have is refused."""
    old = tmp_path / "images.yml"
    old.write_text(
        (ROOT / ".github" / "workflows" / "images.yml")
        .read_text()
        .replace("actions/checkout@v5", "actions/checkout@v4")
    )
    done = subprocess.run([str(ACTIONLINT), str(old)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and 'runtime "node20" is deprecated' in done.stdout


def test_actionlint_flags_a_runner_label_it_does_not_know(tmp_path: Path) -> None:
    """A misspelt runner label (an arm64 job that would wait for a runner forever) is refused too."""
    flow = tmp_path / "builds.yml"
    flow.write_text(
        (ROOT / ".github" / "workflows" / "builds.yml")
        .read_text()
        .replace("ubuntu-24.04-arm", "ubuntu-24.04-arm65")
    )
    done = subprocess.run([str(ACTIONLINT), str(flow)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "ubuntu-24.04-arm65" in done.stdout
