"""Builds and servers on the host, without containers: the Mac (Metal cannot be reached from a container)
and any host given --native. It runs the plan through scripts/macos-native (build, serve, stop, run,
bench); the server is a background process with a pid file and a log file under the data directory."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import plistlib
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast
from xml.parsers.expat import ExpatError

import psutil

from orchestrator.core.plan import Plan
from orchestrator.core.plan.launch_agent import LABEL_PREFIX
from orchestrator.core.plan.native import NativeBuild, native_log, native_state_dir
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors import launchd
from orchestrator.executors.assets import asset
from orchestrator.executors.engine import CommandFailed
from orchestrator.executors.health import Probe, http_readiness
from orchestrator.executors.images import BuildOutcome

SCRIPTS = "scripts/macos-native"
# A llama.cpp build tree with its objects: what the disk needs before a native build starts.
BUILD_DISK_GIB = 3
MIN_MACOS = (14, 0)


class NativeFailed(OrchestratorError):
    """A script of scripts/macos-native failed; the message names its log."""


def script(name: str) -> Path:
    return asset(f"{SCRIPTS}/{name}")


def build_of(plan: Plan) -> NativeBuild:
    if not isinstance(plan.build, NativeBuild):
        raise UsageError(
            f"the {plan.target} target runs in a container; drop --native's opposite or pass --native"
        )
    return plan.build


def state_dir(plan: Plan) -> Path:
    return native_state_dir(plan.data_dir)


def preflight(plan: Plan) -> None:
    """What a host build needs, each missing piece in one line with the way to get it."""
    if platform.system() == "Darwin":
        if platform.machine() != "arm64":
            raise UsageError("the mac-studio target needs Apple silicon (arm64); this Mac is Intel")
        version = tuple(int(p) for p in platform.mac_ver()[0].split(".")[:2] if p.isdigit())
        if version and version < MIN_MACOS:
            raise UsageError(
                f"macOS {'.'.join(map(str, version))} is too old for Metal builds; update to >= 14"
            )
        clt = subprocess.run(["xcode-select", "-p"], capture_output=True, text=True, check=False)
        if clt.returncode != 0:
            raise UsageError("the Xcode command line tools are missing; run: xcode-select --install")
    for tool, how in (("cmake", "brew install cmake / apt-get install cmake"), ("c++", "a C++ compiler")):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} is not installed; install it ({how})")
    if plan.source.kind == "git" and shutil.which("git") is None:
        raise UsageError("git is not installed; install it, or pass --source DIR with a llama.cpp tree")
    folder = plan.data_dir
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free / 2**30
    if free < BUILD_DISK_GIB:
        raise UsageError(f"a build needs {BUILD_DISK_GIB} GiB free at {folder}; only {free:.1f} GiB is")


def is_built(plan: Plan) -> bool:
    return (Path(build_of(plan).prefix) / ".complete").is_file()


def build(plan: Plan, rebuild: bool = False) -> BuildOutcome:
    native = build_of(plan)
    prefix = Path(native.prefix)
    if is_built(plan) and not rebuild:
        return BuildOutcome(str(prefix), built=False, seconds=0.0, log=None)
    preflight(plan)
    if rebuild:
        (prefix / ".complete").unlink(missing_ok=True)
    log = plan.data_dir / "logs" / f"native-{prefix.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **native.env, "CCACHE_DIR": str(plan.data_dir / "ccache")}
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            ["sh", str(script("build.sh"))], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        raise NativeFailed(f"the native build failed ({tail[0] if tail else done.returncode}); log: {log}")
    return BuildOutcome(str(prefix), built=True, seconds=time.monotonic() - started, log=log)


@dataclass(frozen=True)
class NativeState:
    pid: int | None
    running: bool
    argv: tuple[str, ...]
    log: Path
    # The environment the plan gave it (beside the host's own), kept to start it again.
    env: Mapping[str, str] = field(default_factory=dict)


ENV_FILE = "llama-server.env.json"


def socket_folder(plan: Plan) -> None:
    """The folder of the server's socket: there, and a folder (not a link) of ours that only we open (it
    is in /tmp, where anyone may have made it first). Checked before a server is replaced; the socket a
    server that ended left is removed once it is stopped (start_command)."""
    socket = Path(plan.socket)
    folder = socket.parent
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    found = folder.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise UsageError(
            f"{folder} is not a folder of yours that only you open (another user made it, or it is a "
            "link); remove it, then run up again"
        )


def state(plan: Plan) -> NativeState:
    folder = state_dir(plan)
    pid_file = folder / "llama-server.pid"
    pid = read_pid(pid_file) if pid_file.is_file() else None
    argv_file = folder / "llama-server.argv"
    argv = tuple(argv_file.read_text().splitlines()) if argv_file.is_file() else ()
    running = pid is not None and is_server(pid, argv, started_by=pid_file.stat().st_mtime)
    env_file = folder / ENV_FILE
    env = json.loads(env_file.read_text()) if env_file.is_file() else {}
    return NativeState(pid, running, argv, native_log(plan.data_dir), env)


def files_in_use(data_dir: Path) -> dict[Path, str]:
    """The files the native servers name on their command lines: this data directory's background
    server while it runs, and every server a launchd agent of ours keeps (the Mac's, running or to be
    started again at login)."""
    used = _agents_files()
    folder = native_state_dir(data_dir)
    pid_file, argv_file = folder / "llama-server.pid", folder / "llama-server.argv"
    if not pid_file.is_file() or not argv_file.is_file():
        return used
    argv = argv_file.read_text().splitlines()
    pid = read_pid(pid_file)
    if pid is None or not is_server(pid, argv, started_by=pid_file.stat().st_mtime):
        return used
    return used | _named_files(argv, f"the native llama-server (pid {pid})")


def _agents_files() -> dict[Path, str]:
    folder = launchd.agents_dir()
    used: dict[Path, str] = {}
    for agent in sorted(folder.glob(f"{LABEL_PREFIX}*.plist")) if folder.is_dir() else []:
        try:
            loaded = plistlib.loads(agent.read_bytes())
        except (OSError, ValueError, plistlib.InvalidFileException, ExpatError):
            continue  # not an agent file launchd could load either
        if not isinstance(loaded, dict):
            continue
        argv = [str(a) for a in loaded.get("ProgramArguments", [])]
        used |= _named_files(argv, f"the launchd agent {agent.stem}")
    return used


def _named_files(argv: Sequence[str], server: str) -> dict[Path, str]:
    return {Path(arg): server for arg in argv if arg.startswith("/") and Path(arg).is_file()}


def read_pid(pid_file: Path) -> int | None:
    """The pid a pid file holds (None: an empty or damaged one, as a crash can leave)."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


# How long after llama-server began serve.sh may take to write its pid file.
_PID_FILE_SLACK_S = 5.0


def is_server(pid: int, argv: Sequence[str], *, started_by: float) -> bool:
    """Whether pid is the llama-server serve.sh started: alive (not a zombie), running the recorded
    command line, and begun before its pid file was written. A process that reused the pid after the
    server ended (a reboot, a long uptime) fails the last two, and is never signalled."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = tuple(process.cmdline())
        began = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return False  # another user's process: not one we started
    same_command = (
        command == tuple(argv) if argv else bool(command) and Path(command[0]).name == "llama-server"
    )
    return same_command and began <= started_by + _PID_FILE_SLACK_S


def _script_env(plan: Plan, env: Mapping[str, str] | None = None) -> dict[str, str]:
    given = plan.server.env if env is None else env
    return {**os.environ, **given, "PREFIX": build_of(plan).prefix, "STATE_DIR": str(state_dir(plan))}


def start(plan: Plan) -> bool:
    """Start the server unless the same one already runs; a different one is stopped first."""
    current = state(plan)
    if current.running and current.argv == plan.server.argv:
        return False
    start_command(plan, plan.server.argv, plan.server.env)
    return True


def start_command(plan: Plan, argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Start llama-server with this command line and environment in the plan's place (stopping the one
    that runs there): the plan's own, or the one that ran before it."""
    stop(plan)  # the running server, or a stale pid file serve.sh would take for one
    # llama-server refuses to bind over the socket a server that ended left.
    Path(plan.socket).unlink(missing_ok=True)
    folder = state_dir(plan)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ENV_FILE).write_text(json.dumps(dict(env)))
    done = subprocess.run(
        ["sh", str(script("serve.sh")), "--", *argv],
        env=_script_env(plan, env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise NativeFailed(f"llama-server did not start: {(done.stderr or done.stdout).strip()}")


def stop(plan: Plan) -> bool:
    current = state(plan)
    if current.pid is None:
        return False
    if not current.running:
        # The server is gone; its pid may belong to another process by now, which stop.sh would signal.
        (state_dir(plan) / "llama-server.pid").unlink(missing_ok=True)
        return False
    done = subprocess.run(
        ["sh", str(script("stop.sh"))], env=_script_env(plan), capture_output=True, text=True, check=False
    )
    if done.returncode != 0 and state(plan).running:
        os.kill(current.pid, signal.SIGKILL)
    return True


def probe(plan: Plan) -> Probe:
    current = state(plan)
    if not current.running:
        tail = log_tail(plan, 1)
        return Probe("failed", f"llama-server exited ({tail[0] if tail else 'no log'})")
    return Probe(http_readiness(plan.base_url + "/health"), f"pid {current.pid}")


def log_tail(plan: Plan, lines: int) -> list[str]:
    log = state(plan).log
    if not log.is_file():
        return []
    return [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]


def log_lines(plan: Plan, tail: int | None, follow: bool) -> Iterator[str]:
    """The log's last lines; with follow, then each new line as the server writes it, until interrupted."""
    log = state(plan).log
    if not log.is_file():
        return
    with log.open(errors="replace") as handle:
        lines = handle.read().splitlines()
        yield from lines if tail is None else lines[-tail:]
        while follow:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.5)


def stream(plan: Plan, script_name: str, argv: Iterable[str], env: dict[str, str]) -> Iterable[str]:
    """Run llama-cli or llama-batched-bench on the host through run.sh / bench.sh, line by line."""
    argv = list(argv)
    program = argv[0] if argv else script_name
    process = subprocess.Popen(
        ["sh", str(script(script_name)), *argv],
        env={**os.environ, **env, "PREFIX": build_of(plan).prefix},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    # stdout=PIPE makes it a stream; typeshed's Popen cannot say so.
    output = cast(IO[str], process.stdout)
    yield from (line.rstrip("\n") for line in output)
    if process.wait() != 0:
        raise CommandFailed(Path(program).name, process.returncode)
