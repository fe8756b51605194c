"""The unit tier's guard holds: whatever a unit test's code reaches for past its process is refused."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.conftest import NotHermetic


def test_no_child_process() -> None:
    with pytest.raises(NotHermetic, match="child process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(NotHermetic):
        os.system("true")
    import multiprocessing

    with pytest.raises(NotHermetic):
        multiprocessing.get_context("spawn").Process(target=print).start()


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket")
def test_no_socket_of_any_kind_and_no_name_lookup() -> None:
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        # Code under test that swallows any Exception does not swallow the refusal.
        with pytest.raises(NotHermetic, match="a socket"), contextlib.suppress(Exception):
            socket.socket(family, socket.SOCK_STREAM)
    with pytest.raises(NotHermetic, match="DNS"):
        socket.getaddrinfo("example.org", 443)


def test_no_user_data_and_no_engine(tmp_path_factory: pytest.TempPathFactory) -> None:
    from orchestrator.app.config import load_settings

    base = tmp_path_factory.getbasetemp()
    assert Path.home().is_relative_to(base) and load_settings({}).data_dir.is_relative_to(base)
    assert not any(name.startswith("ORCHESTRATOR_") for name in os.environ)
    assert os.environ["DOCKER_HOST"].startswith("unix:///nonexistent/")
    assert Path.cwd().is_relative_to(base)  # no orchestrator.yaml of the checkout's is read


def test_the_unit_tier_is_marked_as_such(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
