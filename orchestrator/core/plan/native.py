"""The native build (macOS with Metal, or --native on Linux): scripts/macos-native/build.sh with the
cmake flags and source in its environment, installed under a prefix named by its digest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.catalogue import Profile, Target
from orchestrator.core.families import CMakeFlag
from orchestrator.core.plan.build_args import cmake_args, plan_digest, source_build_args
from orchestrator.core.plan.layout import SHIPPED_TOOLS
from orchestrator.core.settings import Settings
from orchestrator.core.sources import Source


@dataclass(frozen=True)
class NativeBuild:
    script: str
    prefix: str
    env: Mapping[str, str]
    digest: str


def native_build(
    target: Target, profile: Profile, source: Source, settings: Settings, flags: Sequence[CMakeFlag]
) -> NativeBuild:
    env = {
        **source_build_args(source),
        "LLAMA_SOURCE_DIR": str(source.path) if source.path else "",
        "CMAKE_ARGS": cmake_args(flags),
        "LLAMA_TARGETS": " ".join(SHIPPED_TOOLS),
        "LLAMA_BUILD_COMMIT": source.short_revision,
    }
    digest = plan_digest({"target": target.name, "env": env, "revision": source.revision or source.commit})
    prefix = settings.data_dir / "native" / f"{target.name}-{source.short_revision}-{digest[:8]}"
    return NativeBuild(
        script="scripts/macos-native/build.sh",
        prefix=str(prefix),
        env={**env, "PREFIX": str(prefix)},
        digest=digest,
    )


def native_state_dir(data_dir: Path) -> Path:
    """Where the native server's pid, command line, environment and log are kept."""
    return data_dir / "native" / "state"


def native_log(data_dir: Path) -> Path:
    """The native server's log (serve.sh appends to it; launchd's agent writes it)."""
    return native_state_dir(data_dir) / "llama-server.log"


# A Unix socket's path is at most 104 bytes on macOS and 108 on Linux (sockaddr_un).
MAX_SOCKET_PATH = 100


def native_socket(uid: int, data_dir: Path, project: str) -> Path:
    """Where a native llama-server listens: a Unix socket its proxy alone dials (no TCP port), in a
    folder of /tmp that only its owner opens (a short path whatever the data directory's; checked to be
    the owner's before use), one per data directory and server name."""
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]
    return Path("/tmp") / f"step-flash-{uid}" / f"{project}-{digest}.sock"


def proxy_log(data_dir: Path, project: str) -> Path:
    """The native proxy's log (Caddy's own lines: its errors and one line per request, no headers)."""
    return native_state_dir(data_dir) / f"proxy-{project}.log"


def proxy_storage(data_dir: Path) -> Path:
    return native_state_dir(data_dir) / "caddy"


# Before llama-server binds its socket under launchd (which starts it again after a crash, and at login
# after /tmp was emptied): the folder made if missing, refused unless it is a folder of this user's (not a
# link, not someone else's: /tmp is shared), closed to others, and a socket a crashed run left removed
# (llama-server refuses to bind over one). $0 is the socket, "$@" the server's command line.
_GUARD = (
    'd=${0%/*}; mkdir -m 700 "$d" 2>/dev/null; '
    'if [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] && chmod 700 "$d"; then rm -f "$0" && exec "$@"; fi; '
    'echo "the socket folder $d is not a folder of yours alone: remove it" >&2; exit 1'
)


def socket_guarded(argv: Sequence[str], socket: Path) -> tuple[str, ...]:
    """The server's command line, run after the socket folder's check (what launchd runs)."""
    return ("/bin/sh", "-c", _GUARD, str(socket), *argv)
