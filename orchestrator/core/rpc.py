"""llama.cpp's RPC workers, pure: the addresses a worker may listen on, the `--rpc` list the head is
given, and the warning every worker start prints.

rpc-server has no authentication: anyone who reaches its port can run code on its GPU and read what is
sent to it. So a worker listens on one specific, non-public address: a direct link between the machines
(one QSFP cable between two DGX Sparks, a private subnet on the ConnectX port) or loopback for tests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from orchestrator.errors import UsageError

DEFAULT_RPC_PORT = 50052
DIRECT_LINK = (
    "join the machines by a direct link on a private subnet (two DGX Sparks: one QSFP cable, e.g. "
    "192.168.100.1/24 and .2 on the ConnectX port; see docs/tasks/two-machines.md) and listen on that address"
)
WARNING = (
    "rpc-server has no authentication: anyone who can reach {address} can use this machine's GPU and "
    "read the model; keep that address on a private link only"
)


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _split(text: str, default_port: int | None) -> tuple[str, int]:
    """ADDR[:PORT], IPv6 in brackets: [fd00::1]:50052."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else None)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if port_text == "" and default_port is not None:
        return host, default_port
    if not port_text:
        raise ValueError("expected ADDRESS:PORT")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not 1-65535")
    return host, int(port_text)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        # An IPv6 zone (fe80::2%enp1s0) is part of the address as Python reads it; IPv4 has none.
        return ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None


# Never a worker's address: the ranges other machines share or that Docker hands its own bridges.
_SHARED_RANGES = {
    ipaddress.ip_network("100.64.0.0/10"): "a carrier-grade NAT (or Tailscale) address, shared with others",
    ipaddress.ip_network(
        "172.17.0.0/16"
    ): "Docker's default bridge: every container on this machine reaches it",
}


def parse_listen(text: str) -> Endpoint:
    """Where a worker listens: one specific address of this machine that is not reachable from the
    internet, nor shared with others (the checks that need the head and the host are check_listen's)."""
    try:
        host, port = _split(text, DEFAULT_RPC_PORT)
        address = _address(host)
    except ValueError as exc:
        raise UsageError(
            f"--listen {text}: {exc}; give the worker's address on the link, e.g. 192.168.100.2"
        ) from None
    if address.is_unspecified:
        raise UsageError(
            f"--listen {text}: rpc-server has no authentication, so it never listens on every address; "
            f"{DIRECT_LINK}"
        )
    if address.is_multicast or address.is_reserved:
        raise UsageError(f"--listen {text}: not an address a machine listens on; {DIRECT_LINK}")
    for network, what in _SHARED_RANGES.items():
        if address.version == network.version and address in network:
            raise UsageError(f"--listen {text}: {what}; {DIRECT_LINK}")
    if address.is_global:
        raise UsageError(
            f"--listen {text}: a public address; rpc-server has no authentication and must not be "
            f"reachable from the internet: {DIRECT_LINK}"
        )
    return Endpoint(host, port)


def parse_head(text: str) -> str:
    """The head's address on the link: the one machine the worker admits."""
    try:
        address = _address(text.strip())
    except ValueError as exc:
        raise UsageError(
            f"--head {text}: {exc}; give the head's address on the link, e.g. 192.168.100.1"
        ) from None
    if address.is_unspecified or address.is_multicast:
        raise UsageError(f"--head {text}: one machine's address, e.g. 192.168.100.1")
    return str(address)


@dataclass(frozen=True)
class LinkAddress:
    """An address of this machine: the interface that holds it and that interface's network."""

    interface: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


# Interfaces Docker, libvirt and container runtimes make: bridges every local container or VM reaches.
_BRIDGE_PREFIXES = ("docker", "br-", "veth", "virbr", "cni", "podman", "lxcbr", "lxdbr", "incusbr")


def check_listen(listen: Endpoint, head: str | None, link: LinkAddress | None) -> None:
    """A worker beyond loopback is given the head it serves, on the same link, and its address is on no
    container bridge (link: where this machine holds the address; None: it does not)."""
    address = _address(listen.host)
    if address.is_loopback:
        return
    if head is None:
        raise UsageError(
            f"--listen {listen}: beyond loopback name the head this worker serves (--head ADDRESS on the "
            "same link): rpc-server has no authentication, and the firewall rule admits the head alone"
        )
    if link is None:
        raise UsageError(
            f"--listen {listen}: no interface of this machine has that address; give this machine's "
            "address on the link (ip -brief address)"
        )
    if link.interface.startswith(_BRIDGE_PREFIXES):
        raise UsageError(
            f"--listen {listen}: {link.interface} is a container or VM bridge, which every container on "
            f"this machine reaches; {DIRECT_LINK}"
        )
    if ipaddress.ip_address(head) not in link.network:
        raise UsageError(
            f"--head {head} is not on {listen.host}'s link ({link.network} on {link.interface}); give the "
            "head's address on that link"
        )


def firewall_table(listen: Endpoint) -> str:
    """The nftables table of one worker (one per port, so a second worker's rule leaves the first's)."""
    return f"step_flash_rpc_{listen.port}"


def firewall_rules(listen: Endpoint, head: str) -> str:
    """An nftables ruleset (nft -f) that lets only the head, and this machine itself (its health check,
    `worker status`), reach the worker's port."""
    family = "ip6" if ":" in listen.host else "ip"
    table = firewall_table(listen)
    port = f"{family} daddr {listen.host} tcp dport {listen.port}"
    return (
        f"table inet {table}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        f"    {port} fib saddr type local accept\n"
        f"    {port} {family} saddr != {head} drop\n"
        "  }\n"
        "}\n"
    )


def parse_workers(value: object) -> tuple[Endpoint, ...]:
    """The head's workers: ADDR:PORT[,ADDR:PORT...] (a list in orchestrator.yaml works too)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    workers = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            host, port = _split(text, None)
            _address(host)
        except ValueError as exc:
            raise ValueError(
                f"worker {text!r}: {exc} (write workers as ADDRESS:PORT[,ADDRESS:PORT...])"
            ) from None
        workers.append(Endpoint(host, port))
    if len(set(workers)) != len(workers):
        raise ValueError("a worker is named twice")
    return tuple(workers)


def rpc_arg(workers: tuple[Endpoint, ...]) -> list[str]:
    return ["--rpc", ",".join(str(w) for w in workers)] if workers else []
