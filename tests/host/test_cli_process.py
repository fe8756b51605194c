"""The CLI as a separate process, on this machine: what only a real process shows (its exit code through
the interpreter, what importing it costs, this host's own detection). The rest of the CLI is tested in
this process in tests/unit/test_cli.py."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import run_cli


@pytest.fixture
def clean_env(isolated_env: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["COLUMNS"] = "200"
    return env


def test_auto_detects_this_host(clean_env: dict[str, str]) -> None:
    out = run_cli("plan", "--json", env=clean_env, timeout=60)
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


def test_bad_input_is_one_line_and_exit_2_from_the_process(clean_env: dict[str, str]) -> None:
    out = run_cli("plan", "--target", "tpu", env=clean_env, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "unknown target 'tpu'" in out.stderr


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


def test_the_default_port_is_taken_for_the_whole_run() -> None:
    """As on a machine whose user's server is up: a test that forgets --port is refused at once."""
    from orchestrator.executors.host import LocalHost

    assert not LocalHost().address_free("127.0.0.1", 8080)
