"""The package's layers hold: the import contracts in pyproject.toml are kept, and they do catch a core
module that reaches for I/O or for an executor."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_import_contracts_are_kept() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "6 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "says"),
    [
        ("core/ci.py", "import subprocess", "orchestrator.core is not allowed to import subprocess"),
        ("core/plan/__init__.py", "import rich", "orchestrator.core is not allowed to import rich"),
        (
            "core/doctor.py",
            "from orchestrator.executors import docker",
            "orchestrator.core is not allowed to import orchestrator.executors",
        ),
        ("executors/hooks.py", "from orchestrator.app import render", "orchestrator.executors.hooks ->"),
        # A command family calls the shared steps, never another family; the steps never call a family.
        (
            "app/commands/run.py",
            "from orchestrator.app.commands import server_lifecycle",
            "orchestrator.app.commands.run ->",
        ),
        (
            "app/steps/building.py",
            "from orchestrator.app.commands import doctor",
            "orchestrator.app.steps.building ->",
        ),
        # The engine's types stand apart from the Docker adapter: importing it back makes a circle.
        (
            "executors/engine.py",
            "from orchestrator.executors import docker",
            "No cycles are allowed in orchestrator.executors",
        ),
    ],
)
def test_a_core_module_doing_io_breaks_a_contract(tmp_path: Path, module: str, line: str, says: str) -> None:
    shutil.copytree(ROOT / "orchestrator", tmp_path / "orchestrator")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "orchestrator" / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert says in done.stdout
