"""Who may reach the server and how: the names and addresses it answers to (its Host check and its
certificate's names), plain HTTP or TLS and whose certificate, and which web pages of other sites may
call it (CORS). Pure: settings and host facts in, an `Exposure` out; the proxy's configuration is made
from it (core.plan.proxy) and the certificates by orchestrator.executors.certificates."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::")
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:([0-9]{1,5}))?$")


def is_loopback(host: str) -> bool:
    """Decided by the address: 127.0.0.0/8 or ::1 (and the name localhost). A name such as
    127.evil.example is no address, so not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_host(value: object) -> str:
    """An IP address (written as Python writes it), or a host name that app.config resolves to one."""
    text = str(value).strip().lower()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    if not _HOST_NAME.match(text):
        raise ValueError("expected an IP address such as 127.0.0.1 or 0.0.0.0, or a host name")
    return text


def parse_tls(value: object) -> str:
    """auto (HTTPS beyond loopback, from a local certificate authority), on (HTTPS on loopback too), off,
    or CERT,KEY: the owner's own certificate (chain) and key files."""
    text = str(value).strip()
    if text in ("auto", "on", "off"):
        return text
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError("expected auto, on, off, or CERT,KEY (a certificate file and its key file)")
    return ",".join(str(Path(p).expanduser().absolute()) for p in parts)


def tls_files(tls: str) -> tuple[Path, Path] | None:
    """The owner's certificate and key files a `tls` value names (None: auto, on or off)."""
    if tls in ("auto", "on", "off"):
        return None
    cert, key = tls.split(",")
    return Path(cert), Path(key)


def parse_origins(value: object) -> tuple[str, ...]:
    """Origins as a browser sends them (scheme://host[:port], no path): a list, or comma-separated."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    origins = []
    for item in (str(i).strip() for i in items):
        if not item or item == "none":
            continue
        lowered = item.lower().rstrip("/")
        match = _ORIGIN.match(lowered)
        if not match or (match[4] is not None and not 1 <= int(match[4]) <= 65535):
            raise ValueError(
                f"{item!r} is not an origin: expected scheme://host[:port] such as http://192.168.1.20:3000 "
                "(http or https, no path)"
            )
        origins.append(origin_of(match[1], match[2], int(match[4]) if match[4] else None))
    return tuple(dict.fromkeys(origins))


def parse_host_names(value: object) -> tuple[str, ...]:
    """Extra names or addresses clients use for this machine (a DNS name, a VPN address)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    names = []
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if not (is_address(item) or _HOST_NAME.match(item)):
            raise ValueError(f"{item!r} is neither a host name nor an IP address")
        names.append(item)
    return tuple(dict.fromkeys(names))


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Exposure:
    """How the server is reached: the scheme, whose certificate, the names it answers to (and its
    certificate covers), the host shown to people, and the web origins allowed to call it."""

    scheme: Literal["http", "https"]
    # local-ca: a certificate from the authority made once per data directory; owner: the tls files.
    certificate: Literal["local-ca", "owner"] | None
    owner_files: tuple[Path, Path] | None
    # Host names and addresses, loopback's first: any other Host header is refused.
    names: tuple[str, ...]
    # The name people and agents on other machines use (the bound address, or this machine's name).
    public_host: str
    loopback: bool
    # The only web origins whose pages may call the server: the cors setting's, and this server's own
    # (its page, opened by any of its names). Any other page, even one on another port of this machine,
    # is refused by the proxy.
    origins: tuple[str, ...]
    # This machine's own names and addresses, whatever it is published on: the local authority, made
    # once, may sign for them later (a server first kept on loopback, then published on the LAN).
    machine_names: tuple[str, ...] = ()

    @property
    def dns_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if not is_address(n))

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if is_address(n))


def exposure(
    host: str,
    port: int,
    tls: str,
    cors: tuple[str, ...],
    host_names: tuple[str, ...],
    *,
    hostname: str,
    fqdn: str,
    addresses: tuple[str, ...],
) -> Exposure:
    loopback = is_loopback(host)
    files = tls_files(tls)
    https = files is not None or tls == "on" or (tls == "auto" and not loopback)
    names: list[str] = list(LOOPBACK_NAMES)
    own = [hostname, f"{hostname}.local" if hostname and "." not in hostname else "", fqdn]
    machine = [n for n in own if n] + [a for a in addresses if not is_loopback(a)]
    if host in WILDCARDS:
        names += [n for n in own if n]
        names += [a for a in addresses if not is_loopback(a) and (host == "::" or ":" not in a)]
        public = (host_names or (hostname,))[0] or "127.0.0.1"
    else:
        names.append(host.lower())
        public = host
    names += host_names
    scheme: Literal["http", "https"] = "https" if https else "http"
    own_origins = tuple(origin_of(scheme, _bracketed(n), port) for n in dict.fromkeys(names))
    return Exposure(
        scheme=scheme,
        certificate=None if not https else ("owner" if files else "local-ca"),
        owner_files=files,
        names=tuple(dict.fromkeys(names)),
        public_host=public,
        loopback=loopback,
        origins=tuple(dict.fromkeys((*cors, *own_origins))),
        machine_names=tuple(dict.fromkeys(machine)),
    )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(scheme: str, host: str, port: int | None) -> str:
    """An origin as browsers send it: the scheme's default port is left out."""
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to host (a wildcard: loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def made_key_path(data_dir: Path) -> Path:
    """Where `up` writes the API key it makes (only its owner can read it); found again by later
    commands that publish beyond loopback without a key file of their own."""
    return data_dir / "keys" / "api-key"


def exposure_problem(host: str, tls: str, has_key: bool, plain_confirmed: bool) -> str | None:
    """Why a server may not be published so (None: it may): beyond loopback it needs a key, and TLS
    unless plain HTTP is confirmed."""
    if is_loopback(host):
        return None
    if not has_key:
        return (
            f"refusing to publish on {host} without an API key; pass --api-key-file FILE, let up make one "
            "(--make-api-key), or keep the default 127.0.0.1"
        )
    if tls == "off" and not plain_confirmed:
        return (
            f"tls is off and {host} is not loopback: the API key and every prompt would cross the network in "
            "clear; drop tls: off (HTTPS is the default beyond loopback) or confirm with --allow-plain-http"
        )
    return None
