"""The unit tier is hermetic: no Docker engine, no network, no child process, no user data. The guard
below makes any of these fail the test at once, whatever the code under test does with errors; what
needs them lives in tests/host (this machine's programs) and tests/engine (a real Docker engine)."""

from __future__ import annotations

import _posixsubprocess
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_socket
from pytest_socket import disable_socket, enable_socket

from tests.conftest import load_raw_probe
from tests.fakes import FakeEngine, executors


class NotHermetic(BaseException):
    """A unit test reached past its process: a child process, the user's files, the engine."""


class SocketRefused(NotHermetic):
    """What pytest-socket raises here in place of its own (an Exception) for a socket of any family."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        super().__init__("the unit tier is hermetic: a socket (move the test to tests/host or tests/engine)")


def _refuse(what: str) -> Callable[..., object]:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise NotHermetic(f"the unit tier is hermetic: {what} (move the test to tests/host or tests/engine)")

    return refuse


@pytest.fixture(scope="session", autouse=True)
def plotting_fonts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """matplotlib lists the system's fonts once per process, with a child process (fc-list): done before
    the guard, in a cache folder of this run's, not the user's."""
    os.environ["MPLCONFIGDIR"] = str(tmp_path_factory.mktemp("matplotlib"))
    import matplotlib.font_manager  # noqa: F401 - the import builds the font list


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No child process: every way Python starts one ends in one of these (multiprocessing's spawn and
    # forkserver in fork_exec).
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("a child process"))
    monkeypatch.setattr(_posixsubprocess, "fork_exec", _refuse("a child process"))
    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp", "execv", "execve"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
    # No user data: home, configuration, data and caches are a fresh folder; no setting comes from the
    # environment of whoever runs the tests; no engine is named.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for variable in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "XDG_RUNTIME_DIR",
    ):
        monkeypatch.setenv(variable, str(home / variable.lower()))
    for name in list(os.environ):
        if name.startswith(("ORCHESTRATOR_", "DOCKER_", "HF_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/hermetic-unit-tier.sock")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # No orchestrator.yaml of the checkout's or the developer's folder: the test's own working folder.
    monkeypatch.chdir(tmp_path_factory.mktemp("work"))
    # No network and no engine socket: no socket of any family may be made, no name looked up. The
    # refusal is a NotHermetic too, so code that catches Exception cannot swallow it.
    monkeypatch.setattr(pytest_socket, "SocketBlockedError", SocketRefused)
    disable_socket(allow_unix_socket=False)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse("a name lookup (DNS)"))
    monkeypatch.setattr(socket, "gethostbyname", _refuse("a name lookup (DNS)"))
    try:
        yield
    finally:
        enable_socket()


@pytest.fixture(autouse=True)
def package_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image's build context gets its fallback web page from the package index: here a stand-in page,
    written as the real one would be (the real page is fetched by the engine tier's image builds)."""
    from orchestrator.executors import images

    def stage(folder: Path, _cache: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.html").write_text("<!doctype html><title>stand-in page</title>\n")
        (folder / "SOURCE").write_text("a stand-in for the unit tier\n")

    monkeypatch.setattr(images, "stage_fallback_page", stage)


@pytest.fixture(autouse=True)
def this_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reading the host (programs such as nvidia-smi, DNS for its own name) is tests/host's: here the host
    is a Debian machine without a GPU, unless a test hands the CLI another (`cli(..., host=NAME)`)."""
    from orchestrator.executors import probe

    monkeypatch.setattr(probe, "probe_raw", lambda: load_raw_probe("cpu-debian"))
    probe.probe.cache_clear()
    yield
    probe.probe.cache_clear()  # the tiers after this one read the real host


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A real, tiny mixture-of-experts GGUF under tmp_path/models (the fakes never load it)."""
    from tests.tiny_gguf import write_tiny_moe

    path = tmp_path / "models" / "tiny-moe.gguf"
    path.parent.mkdir()
    write_tiny_moe(path)
    return path


@pytest.fixture
def fake_executors(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The CLI in this process (main()), its engine and host the recording fakes: nothing runs for real."""
    from orchestrator.app.session import Session

    engine = FakeEngine()
    monkeypatch.setattr(Session, "executors", lambda self: executors(engine))
    return engine


@dataclass(frozen=True)
class Ran:
    """What a CLI run left: its exit code and what it printed, as a user's terminal would show them."""

    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fake_executors: FakeEngine
) -> Cli:
    """`orchestrator ARGS...` in this process, with the recording fakes for its engine and host and the
    host's facts those of a Debian machine without a GPU (or of `host=`, a name under fixtures/hosts)."""
    from orchestrator.app import cli as entry
    from orchestrator.executors import probe

    def run(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, host: str = "cpu-debian"
    ) -> Ran:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(probe, "probe_raw", lambda: load_raw_probe(host))
        probe.probe.cache_clear()
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        capsys.readouterr()
        try:
            code = entry.main(list(args))
        except SystemExit as exc:  # argparse: --help, or a usage error
            code = exc.code if isinstance(exc.code, int) else 2
        finally:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run
