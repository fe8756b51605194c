"""The workflows, read as data: the image matrix is the catalogue's (golden-tested) and images.yml is
wired to it; tests.yml runs the README's test command; every variable that opts a test in is set by a
workflow job that runs that test. (actionlint and the published schema, programs of their own, check the
files in tests/host/test_workflows.py.)"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.app.cli import main
from orchestrator.core.catalogue import CATALOGUE
from orchestrator.core.ci import ci_matrix

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "images.yml"
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


def test_cli_prints_the_matrix_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci-matrix"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    assert json.loads(out) == ci_matrix()


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


def _workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def _on(flow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as True.
    return dict(flow.get("on", flow.get(True)) or {})


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_the_suite_runs_the_readmes_test_command_on_pull_requests_and_main() -> None:
    flow = _workflow("tests.yml")
    on = _on(flow)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    (job,) = flow["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"
    # The suite takes about 55 minutes fresh on 2 cores, and a hosted runner is always fresh.
    assert 60 <= job["timeout-minutes"] <= 120
    assert re.search(r"(^|\s)\.ci/run$", _runs(job), re.MULTILINE), _runs(job)
    assert "scripts/test.sh -ra" in (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in (ROOT / "README.md").read_text()


def test_arm64_runs_on_an_arm64_runner_and_cuda_on_schedule_and_by_hand() -> None:
    flow = _workflow("builds.yml")
    on = _on(flow)
    assert on["schedule"] and "workflow_dispatch" in on
    jobs = flow["jobs"]
    assert jobs["arm64"]["runs-on"] == "ubuntu-24.04-arm"
    assert "tests/engine/test_arm64.py" in _runs(jobs["arm64"])
    assert "tests/engine/test_cuda.py" in _runs(jobs["cuda"])


# A test opts in on a variable set to "1": its skip condition compares os.environ.get(NAME) with "1".
_OPT_IN = re.compile(r'os\.environ\.get\(\s*"([A-Z0-9_]+)"\s*\)\s*!=\s*"1"')


def opt_ins(tests: Path) -> dict[str, set[str]]:
    """Each opt-in variable the tests read, with the test files (from the repository root) that read it."""
    found: dict[str, set[str]] = {}
    for path in sorted(tests.rglob("*.py")):
        for name in _OPT_IN.findall(path.read_text()):
            found.setdefault(name, set()).add(path.relative_to(tests.parent).as_posix())
    return found


def opted_in(workflows: Path) -> dict[str, set[str]]:
    """Each variable a workflow job sets to "1" (in the workflow's, the job's or a step's env), with
    what the job runs: the test files its steps name, or "*" for the whole suite (.ci/run, test.sh)."""
    found: dict[str, set[str]] = {}
    for path in sorted(workflows.glob("*.yml")):
        flow = yaml.safe_load(path.read_text())
        for job in flow["jobs"].values():
            envs = [flow.get("env") or {}, job.get("env") or {}]
            envs += [step.get("env") or {} for step in job.get("steps", [])]
            runs = _runs(job) if "steps" in job else ""
            ran = set(re.findall(r"tests/[\w/]+\.py", runs))
            if ".ci/run" in runs or "scripts/test.sh" in runs:
                ran.add("*")
            for env in envs:
                for name, value in env.items():
                    if str(value) == "1":
                        found.setdefault(name, set()).update(ran)
    return found


def never_run(tests: Path, workflows: Path) -> dict[str, set[str]]:
    """The opt-in variables no workflow sets for a job that runs the files reading them: those files."""
    given = opted_in(workflows)
    missing = {}
    for name, files in opt_ins(tests).items():
        runs = given.get(name, set())
        left = set() if "*" in runs else files - runs
        if left:
            missing[name] = left
    return missing


def test_every_opt_in_variable_is_set_by_a_workflow_that_runs_its_tests() -> None:
    """A test behind an opt-in variable that no workflow sets never runs anywhere."""
    # The scan finds what the tests read (were its pattern to go stale, it would find nothing).
    assert {"STEP_FLASH_ARM64", "STEP_FLASH_ARM64_IMAGE", "STEP_FLASH_CUDA_FULL"} <= set(
        opt_ins(ROOT / "tests")
    )
    assert never_run(ROOT / "tests", WORKFLOWS) == {}


def test_an_opt_in_that_no_workflow_runs_is_found(tmp_path: Path) -> None:
    """The check above fails for a new opt-in test no workflow sets, and for one set in a job that runs
    other tests only."""
    tests = tmp_path / "tests"
    (tests / "engine").mkdir(parents=True)
    skip = "os.environ" + '.get("STEP_FLASH_NEW") != "1"'
    (tests / "engine" / "test_new.py").write_text(f"import os\nSKIP = {skip}\n")
    assert never_run(tests, WORKFLOWS) == {"STEP_FLASH_NEW": {"tests/engine/test_new.py"}}
    flows = tmp_path / "workflows"
    flows.mkdir()

    def job(runs: str) -> None:
        steps = [{"run": runs}]
        (flows / "flow.yml").write_text(
            yaml.safe_dump({"jobs": {"j": {"env": {"STEP_FLASH_NEW": "1"}, "steps": steps}}})
        )

    job("python -m pytest tests/engine/test_other.py")
    assert never_run(tests, flows) == {"STEP_FLASH_NEW": {"tests/engine/test_new.py"}}
    job("python -m pytest tests/engine/test_new.py")
    assert never_run(tests, flows) == {}
    job(".ci/run")
    assert never_run(tests, flows) == {}
