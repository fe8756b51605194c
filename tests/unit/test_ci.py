"""The CI workflow and its matrix: the matrix is the catalogue's (golden-tested), and the workflow file is
valid GitHub Actions (actionlint where it is installed, the published workflow schema always)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.core.catalogue import CATALOGUE
from orchestrator.core.ci import ci_matrix

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"
GOLDEN = ROOT / "tests" / "golden" / "ci-matrix.json"


def test_ci_matrix_matches_golden() -> None:
    text = json.dumps(ci_matrix(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_matrix_covers_every_container_image_on_its_own_architecture() -> None:
    rows = ci_matrix()["include"]
    containers = {t.name for t in CATALOGUE.values() if t.runtime == "container"}
    assert {r["target"] for r in rows} == containers
    dgx = [r for r in rows if r["target"] == "dgx-spark"]
    assert dgx and all(r["platform"] == "linux/arm64" and r["runner"].endswith("-arm") for r in dgx)
    assert {r["profile"] for r in dgx} == {"default", "long-context"}  # the MMQ variant is its own image
    assert len({r["name"] for r in rows}) == len(rows)


def test_cli_prints_the_matrix_on_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ci-matrix"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and len(done.stdout.strip().splitlines()) == 1
    assert json.loads(done.stdout) == ci_matrix()


def test_workflow_is_valid_and_wired_to_the_catalogue() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = " ".join(str(s.get("run", "")) for s in flow["jobs"]["matrix"]["steps"])
    assert "orchestrator ci-matrix" in steps
    build = flow["jobs"]["build"]
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    assert build["runs-on"] == "${{ matrix.runner }}"
    run = " ".join(str(s.get("run", "")) for s in build["steps"])
    assert (
        '--build --registry "$REGISTRY"' in run and "args+=(--push)" in run and "GITHUB_STEP_SUMMARY" in run
    )
    # CI pushes to the namespace of the repository it runs in, never a name spelled in the project; the
    # release writes it and the digests into the lock and builds the package from that tree.
    assert build["env"]["REGISTRY"] == "${{ needs.matrix.outputs.registry }}"
    registry = " ".join(str(s.get("run", "")) for s in flow["jobs"]["matrix"]["steps"])
    assert "ghcr.io/${OWNER,,}" in registry
    assert all("registry" not in row for row in ci_matrix()["include"])
    assert "ghcr.io/step-flash" not in WORKFLOW.read_text()
    release = " ".join(str(s.get("run", "")) for s in flow["jobs"]["release"]["steps"])
    assert (
        'orchestrator ci-lock pushed/*/build.json --lock orchestrator/images.lock.json --registry "$REGISTRY"'
        in release
    )
    assert release.index("ci-lock") < release.index("python -m build")
    attest = [
        s for s in build["steps"] if str(s.get("uses", "")).startswith("actions/attest-build-provenance")
    ]
    assert attest and attest[0]["with"]["push-to-registry"] is True
    # Every image is checked as the arm64 path was proven here (tests/engine/test_arm64.py), from its plan.
    assert 'orchestrator plan "${args[@]}" --json > plan.json' in run
    assert "scripts/verify-image.sh plan.json" in run
    # Pull requests build without pushing: the push flag and the registry login hang on the event.
    assert "github.event_name != 'pull_request'" in build["env"]["PUSH"]
    checker = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


ACTIONLINT = Path(sys.executable).with_name("actionlint")


def test_workflow_passes_actionlint() -> None:
    done = subprocess.run([str(ACTIONLINT), str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_actionlint_flags_an_action_on_a_retired_runtime(tmp_path: Path) -> None:
    """The check above can fail: the same workflow on the node20 actions it used to have is refused."""
    old = tmp_path / "images.yml"
    old.write_text(WORKFLOW.read_text().replace("actions/checkout@v5", "actions/checkout@v4"))
    done = subprocess.run([str(ACTIONLINT), str(old)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and 'runtime "node20" is deprecated' in done.stdout
