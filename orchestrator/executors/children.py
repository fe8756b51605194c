"""The programs this process started (docker buildx, docker compose, docker run, the native scripts)
stop when it is interrupted. Ctrl-C on a terminal reaches them through the process group; a signal sent
to this process alone (a service manager's SIGTERM, `kill`) does not, so it is passed on here."""

from __future__ import annotations

import signal

import psutil

GRACE_S = 15.0


def stop_children(signum: int = signal.SIGINT) -> None:
    """Pass the signal to every child process and wait for them; whatever is left after the grace
    period is killed."""
    children = psutil.Process().children(recursive=False)
    for child in children:
        try:
            child.send_signal(signum)
        except psutil.NoSuchProcess:
            continue
    _gone, alive = psutil.wait_procs(children, timeout=GRACE_S)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
