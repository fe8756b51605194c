"""scripts/gpu-check.sh as far as a machine without an NVIDIA GPU can take it: its arguments, its one-line
refusal where there is no GPU (before anything is downloaded or built). Its shellcheck run is with the
other scripts' in tests/host/test_native.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _run(*args: str, path: Path | None = None, work: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}:/usr/bin:/bin"
    extra = ["--work", str(work)] if work else []
    return subprocess.run(
        ["bash", str(SCRIPT), *extra, *args], capture_output=True, text=True, env=env, timeout=60
    )


def _fake_nvidia_smi(folder: Path, output: str) -> Path:
    folder.mkdir(exist_ok=True)
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    tool.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--mode", "fast"), "--mode is auto, container, native or both, not 'fast'"),
        (("--bogus",), "unknown argument '--bogus'; see scripts/gpu-check.sh --help"),
        (("--mode",), "--mode needs a value"),
        (("--model", "/nonexistent.gguf"), "--model /nonexistent.gguf is not a file"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    done = _run(*args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"gpu-check: {says}")


def test_help_names_every_option() -> None:
    done = _run("--help")
    assert done.returncode == 0
    for option in ("--mode", "--model", "--work", "--keep"):
        assert option in done.stdout


def test_no_nvidia_smi_is_refused_in_one_line_before_any_download(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "awk", "head", "dirname", "mkdir", "tee", "cat"):
        found = shutil.which(tool)
        assert found
        (bare / tool).symlink_to(found)
    done = _run(path=bare, work=tmp_path / "work")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu-check: no NVIDIA GPU here: nvidia-smi is not installed; run this on the NVIDIA machine (driver R580+)"
    )
    assert not (tmp_path / "work").exists()


def test_a_driver_that_lists_no_gpu_is_refused(tmp_path: Path) -> None:
    fake = _fake_nvidia_smi(tmp_path / "bin", "")
    done = _run(path=fake, work=tmp_path / "work")
    assert done.returncode == 2
    assert "nvidia-smi lists none" in done.stderr
    assert not (tmp_path / "work").exists()


def test_container_mode_without_the_nvidia_runtime_is_refused(tmp_path: Path) -> None:
    # A GPU that nvidia-smi lists, and no Docker runtime named nvidia on this machine.
    fake = _fake_nvidia_smi(tmp_path / "bin", "NVIDIA H200, 9.0, 580.95.05\n")
    done = _run("--mode", "container", path=fake, work=tmp_path / "work")
    assert done.returncode == 2
    assert "Docker here has no nvidia runtime: install the NVIDIA Container Toolkit" in done.stderr
