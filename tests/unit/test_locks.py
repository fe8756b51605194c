"""One writer at a time, inside one process (the lock is an OS file lock, so a second FileLock on the same
file conflicts even here): a writer refuses with --no-wait naming the holder, or says for whom it waits
before it waits; and the one-line answers about folders that cannot be used. Across real processes:
tests/host/test_locks.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from orchestrator.executors.lock import Busy, exclusive, holder


@pytest.fixture
def data(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = isolated_env / "data-dir"
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    return folder


def _never(_: str) -> None:
    raise AssertionError("said it waits")


def test_no_wait_refuses_naming_the_holder(tmp_path: Path) -> None:
    with exclusive(tmp_path, wait=True, on_wait=_never):
        found = holder(tmp_path)
        assert found is not None and found.pid == os.getpid()
        with (
            pytest.raises(Busy, match=f"in use by pid {os.getpid()} .*drop --no-wait"),
            exclusive(tmp_path, wait=False, on_wait=_never),
        ):
            pass
    assert holder(tmp_path) is None, "the holder's note goes with the lock"


def test_a_waiter_says_for_whom_and_gets_the_lock_once_it_is_let_go(tmp_path: Path) -> None:
    said: list[str] = []
    waits, got = threading.Event(), threading.Event()

    def on_wait(line: str) -> None:
        said.append(line)
        waits.set()

    def second() -> None:
        with exclusive(tmp_path, wait=True, on_wait=on_wait):
            got.set()

    with exclusive(tmp_path, wait=True, on_wait=_never):
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        # The waiter has said it waits; as long as this block holds the lock it cannot have it.
        assert waits.wait(timeout=120), "the second writer never said it waits"
        assert not got.is_set()
    waiter.join(timeout=120)
    assert got.is_set()
    assert len(said) == 1 and said[0].startswith(f"waiting for pid {os.getpid()} ("), said
    assert str(tmp_path) in said[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["bench", "--results", "/proc/forbidden"], "cannot make the results folder /proc/forbidden"),
        (["bench", "report", "--results", "FILE"], "the results folder FILE is a file, not a folder"),
        (["model", "list", "--models-dir", "FILE"], "the models directory FILE is a file, not a folder"),
        (["bench", "report", "--results", "/proc/1"], "cannot write in the results folder /proc/1"),
    ],
)
def test_path_errors_are_one_line(
    args: list[str], says: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    args = [str(a_file) if a == "FILE" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert says.replace("FILE", str(a_file)) in err


def test_an_unwritable_data_dir_is_one_line(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(a_file / "data"))
    assert main(["bench", "report"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "choose a writable folder" in err, err
