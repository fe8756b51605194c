"""Talking to an RPC worker the way llama.cpp's client does first: connect, send HELLO, read the protocol
version it answers (ggml-rpc.cpp at the pinned commit: command byte 14, a little-endian u64 size, then
24 bytes of connection capabilities; the answer is a u64 size, then major, minor, patch, a padding byte
and 24 bytes of capabilities). rpc-server serves one client at a time, so this is only asked before the
head connects; `reachable` (a TCP connect, nothing sent) is what a running head's status asks."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.core.rpc import Endpoint, LinkAddress
from orchestrator.errors import OrchestratorError, UsageError

_HELLO = 14
_CAPS = 24
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Hello:
    """A worker's answer: its protocol version, or why there was none."""

    endpoint: Endpoint
    version: tuple[int, int, int] | None
    problem: str | None = None

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown"


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the worker closed the connection")
        data += chunk
    return data


def hello(endpoint: Endpoint, timeout: float = _TIMEOUT_S) -> Hello:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(struct.pack("<BQ", _HELLO, _CAPS) + bytes(_CAPS))
            (size,) = struct.unpack("<Q", _recv(sock, 8))
            if size != 4 + _CAPS:
                return Hello(
                    endpoint, None, f"answered HELLO with {size} bytes, not an rpc-server of this protocol"
                )
            major, minor, patch, _pad = struct.unpack("<BBBB", _recv(sock, 4))
            _recv(sock, _CAPS)
            return Hello(endpoint, (major, minor, patch))
    except TimeoutError:
        return Hello(endpoint, None, f"no answer within {timeout:.0f} s (busy serving another head?)")
    except OSError as exc:
        return Hello(endpoint, None, exc.strerror or str(exc))


def reachable(endpoint: Endpoint, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Link:
    """The interface this host reaches a worker through, with its speed and MTU as /sys reports them."""

    interface: str | None
    speed_mbps: int | None
    mtu: int | None


def _sys_int(path: Path) -> int | None:
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def link_to(endpoint: Endpoint) -> Link:
    """`ip route get` names the interface; /sys/class/net/<it>/speed and /mtu say what it is."""
    try:
        route = subprocess.run(
            ["ip", "-o", "route", "get", endpoint.host],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return Link(None, None, None)
    found = re.search(r"\bdev (\S+)", route)
    if found is None:
        return Link(None, None, None)
    net = Path("/sys/class/net") / found.group(1)
    return Link(found.group(1), _sys_int(net / "speed"), _sys_int(net / "mtu"))


def link_address(host: str) -> LinkAddress | None:
    """The interface of this machine that holds host, and its network (None: no interface has it)."""
    wanted = ipaddress.ip_address(host.split("%")[0])
    for interface, addresses in psutil.net_if_addrs().items():
        for entry in addresses:
            if entry.family not in (socket.AF_INET, socket.AF_INET6) or not entry.netmask:
                continue
            try:
                if ipaddress.ip_address(entry.address.split("%")[0]) != wanted:
                    continue
                network = ipaddress.ip_network(f"{wanted}/{entry.netmask}", strict=False)
            except ValueError:
                continue
            return LinkAddress(interface, network)
    return None


def apply_firewall(rules: str) -> None:
    """Load an nftables ruleset (as root): the worker's port admits only its head."""
    nft = shutil.which("nft")
    if nft is None:
        raise UsageError(
            "nft is not installed; install nftables (apt install nftables), or apply the rule above yourself"
        )
    done = subprocess.run([nft, "-f", "-"], input=rules, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OrchestratorError(
            f"nft refused the worker's firewall rule: {(done.stderr or done.stdout).strip()}"
        )
