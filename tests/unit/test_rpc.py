"""RPC workers' addresses: where a worker may listen (never everywhere, never in public), the head's list,
and the worker's compose service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.rpc import Endpoint, parse_listen, parse_workers
from orchestrator.core.worker import worker_plan
from orchestrator.errors import UsageError
from tests.planning import fixed_plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", Endpoint("127.0.0.1", 50052)),
        ("192.168.100.2:50060", Endpoint("192.168.100.2", 50060)),
        ("10.0.0.7", Endpoint("10.0.0.7", 50052)),
        ("[fd00::2]:50052", Endpoint("fd00::2", 50052)),
        ("169.254.10.2", Endpoint("169.254.10.2", 50052)),
    ],
)
def test_private_and_loopback_addresses_are_accepted(text: str, expected: Endpoint) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.0.0.0", "never listens on every address"),
        ("[::]:50052", "never listens on every address"),
        ("8.8.8.8", "a public address"),
        ("2001:4860::8888", "a public address"),
        ("worker.example", "is not an IP address"),
        ("10.0.0.2:99999", "port '99999' is not 1-65535"),
        ("172.17.0.1:50052", "Docker's default bridge"),
        ("100.64.1.1", "carrier-grade NAT"),
    ],
)
def test_open_public_and_malformed_addresses_are_refused(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        parse_listen(text)
    # The refusal says what to do instead: a direct link on a private subnet.
    assert "\n" not in str(refused.value)
    if "every address" in says or "public" in says or "bridge" in says or "NAT" in says:
        assert "direct link on a private subnet" in str(refused.value)


def test_the_heads_worker_list() -> None:
    assert parse_workers("127.0.0.1:50052, 127.0.0.1:50053") == (
        Endpoint("127.0.0.1", 50052),
        Endpoint("127.0.0.1", 50053),
    )
    assert parse_workers(["10.0.0.2:1"]) == (Endpoint("10.0.0.2", 1),)
    for bad in ("127.0.0.1", "host:50052", "127.0.0.1:1,127.0.0.1:1"):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_a_malformed_rpc_setting_is_one_line(isolated_env: Path) -> None:
    from orchestrator.app.cli import main

    assert main(["plan", "--target", "cpu", "--rpc", "127.0.0.1"]) == 2


def test_the_head_gets_rpc_and_the_hosts_network() -> None:
    plan = fixed_plan("dgx-spark", "default", {"rpc": "192.168.100.2:50052"})
    argv = plan.server.argv
    assert argv[argv.index("--rpc") + 1] == "192.168.100.2:50052"
    # On the host's network llama-server dials its workers, and listens on no TCP port: only on the
    # socket its proxy shares. The proxy stays on its own network and alone is published.
    assert argv[argv.index("--host") + 1] == "/run/step-flash/llama-server.sock"
    assert plan.compose is not None
    service = plan.compose["services"]["llama-server"]
    proxy = plan.compose["services"]["proxy"]
    assert service["network_mode"] == "host" and "ports" not in service
    assert "network_mode" not in proxy and proxy["ports"] == ["127.0.0.1:8080:8443"]
    server = plan.proxy["apps"]["http"]["servers"]["step-flash"]
    assert server["listen"] == [":8443"]
    assert server["routes"][-1]["handle"][0]["upstreams"] == [
        {"dial": "unix//run/step-flash/llama-server.sock"}
    ]


def test_without_workers_llama_server_has_no_network_at_all() -> None:
    plan = fixed_plan("cpu", "default", {"port": 18080})
    assert plan.compose is not None
    service = plan.compose["services"]["llama-server"]
    proxy = plan.compose["services"]["proxy"]
    assert service["network_mode"] == "none" and "ports" not in service
    # The socket's folder: in memory, shared by these two alone, opened by the containers' user only.
    mounts = [v for v in service["volumes"] + proxy["volumes"] if v["type"] == "volume"]
    assert [m["source"] for m in mounts] == ["socket", "socket"]
    options = plan.compose["volumes"]["socket"]["driver_opts"]
    assert options["type"] == "tmpfs" and options["o"].endswith("mode=0700")
    assert options["o"].startswith(f"uid={service['user'].split(':')[0]},")
    # A socket file a crashed run left is removed before llama-server binds again.
    assert service["command"][:4] == [
        "sh",
        "-c",
        'rm -f "$0" && exec "$@"',
        "/run/step-flash/llama-server.sock",
    ]
    assert service["command"][4:] == list(plan.server.argv)
    assert "--unix-socket" in service["healthcheck"]["test"]


def test_the_worker_runs_the_heads_image_on_its_address() -> None:
    plan = fixed_plan("dgx-spark", "default")
    worker = worker_plan(plan, parse_listen("192.168.100.2"))
    assert worker.image == plan.build.tag  # type: ignore[union-attr]
    assert worker.argv == ("rpc-server", "-H", "192.168.100.2", "-p", "50052", "-c")
    service = worker.compose["services"]["rpc-server"]
    assert service["network_mode"] == "host" and service["user"] == "10001:10001"
    # The target's environment, and the tensor cache on its volume.
    assert service["environment"]["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert service["environment"]["LLAMA_CACHE"] == "/var/cache/llama"
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "no authentication" in worker.warning and "192.168.100.2:50052" in worker.warning
    with pytest.raises(UsageError, match="a worker runs in a container"):
        worker_plan(fixed_plan("mac-studio", "default"), parse_listen("192.168.100.2"))


def test_the_pair_profile_spreads_over_two_sparks() -> None:
    alone = fixed_plan("dgx-spark", "pair")
    (server,) = alone.memory.rows[:1]
    assert server.fit.fits is False
    assert server.fit.fixes[0].startswith("a second machine as an RPC worker")
    assert any("spreads the model over 1 RPC worker" in w for w in alone.warnings)
    pair = fixed_plan("dgx-spark", "pair", {"rpc": "192.168.100.2:50052"})
    head, worker = pair.memory.rows[:2]
    assert (head.use, worker.use) == ("server (head)", "server (worker 192.168.100.2:50052)")
    assert head.fit.fits and worker.fit.fits
    # Split by each machine's memory: the head's host has less free than a worker Spark's 119 GiB.
    assert head.fit.estimate.weights < worker.fit.estimate.weights
    whole = server.fit.estimate
    assert head.fit.estimate.weights + worker.fit.estimate.weights == pytest.approx(whole.weights, abs=2)
    assert head.fit.estimate.compute == worker.fit.estimate.compute == whole.compute


def test_beyond_loopback_a_worker_serves_one_head_on_its_own_link() -> None:
    import ipaddress

    from orchestrator.core.rpc import LinkAddress, check_listen, firewall_rules, parse_head

    link = LinkAddress("enp1s0f0np0", ipaddress.ip_network("192.168.100.0/24"))
    listen = parse_listen("192.168.100.2")
    check_listen(listen, "192.168.100.1", link)
    check_listen(parse_listen("127.0.0.1"), None, None)  # loopback: the head is this machine
    refusals = [
        (listen, None, link, "name the head this worker serves"),
        (listen, "192.168.100.1", None, "no interface of this machine has that address"),
        (listen, "10.0.0.1", link, "is not on 192.168.100.2's link"),
        (
            parse_listen("10.200.0.1"),
            "10.200.0.2",
            LinkAddress("br-1a2b3c", ipaddress.ip_network("10.200.0.0/24")),
            "container or VM bridge",
        ),
        (
            parse_listen("[fd00::2]"),
            "fd00::1",
            LinkAddress("docker0", ipaddress.ip_network("fd00::/64")),
            "container or VM bridge",
        ),
    ]
    for where, head, holder, says in refusals:
        with pytest.raises(UsageError, match=says):
            check_listen(where, head, holder)
    with pytest.raises(UsageError, match="one machine's address"):
        parse_head("0.0.0.0")
    rules = firewall_rules(listen, "192.168.100.1")
    assert "ip daddr 192.168.100.2 tcp dport 50052 ip saddr != 192.168.100.1 drop" in rules
    # This machine's own connections (the health check, worker status) stay admitted, before the drop.
    local = "ip daddr 192.168.100.2 tcp dport 50052 fib saddr type local accept"
    assert rules.index(local) < rules.index("drop") and "table inet step_flash_rpc_50052 {" in rules
    assert "type filter hook input priority filter; policy accept;" in rules
    six = firewall_rules(parse_listen("[fd00::2]:50060"), "fd00::1")
    assert "ip6 daddr fd00::2 tcp dport 50060 ip6 saddr != fd00::1 drop" in six


def test_worker_up_beyond_loopback_shows_the_rule_and_refuses_without_its_head(tmp_path: Path) -> None:
    import ipaddress

    from orchestrator.app.commands import workers
    from orchestrator.core.rpc import LinkAddress
    from tests.fakes import FakeEngine, FakeHost, Notes, cpu_plan, executors

    engine = FakeEngine()
    host = FakeHost(
        workers={"192.168.100.2:50052": (7, 0, 0)},
        links={"192.168.100.2": LinkAddress("enp1s0f0np0", ipaddress.ip_network("192.168.100.0/24"))},
    )
    plan = cpu_plan(tmp_path)
    with pytest.raises(UsageError, match="--head"):
        workers.worker_up(plan, parse_listen("192.168.100.2"), executors(engine, host), Notes().reporter())
    assert "compose_up" not in engine.names()
    started = workers.worker_up(
        plan,
        parse_listen("192.168.100.2"),
        executors(engine, host),
        Notes().reporter(),
        head="192.168.100.1",
    )
    assert started.firewall is not None and "saddr != 192.168.100.1 drop" in started.firewall
    assert not started.firewall_loaded and "apply_firewall" not in [n for n, _ in host.calls]


def test_worker_up_firewall_loads_the_rule_as_root_and_refuses_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress
    import os

    from orchestrator.app.commands import workers
    from orchestrator.core.rpc import LinkAddress
    from tests.fakes import FakeEngine, FakeHost, Notes, cpu_plan, executors

    host = FakeHost(
        workers={"192.168.100.2:50052": (7, 0, 0)},
        links={"192.168.100.2": LinkAddress("enp1s0f0np0", ipaddress.ip_network("192.168.100.0/24"))},
    )
    listen = parse_listen("192.168.100.2")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="needs root"):
        workers.worker_up(
            cpu_plan(tmp_path), listen, executors(FakeEngine(), host), Notes().reporter(),
            head="192.168.100.1", firewall=True,
        )  # fmt: skip
    assert "apply_firewall" not in [name for name, _ in host.calls]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    started = workers.worker_up(
        cpu_plan(tmp_path), listen, executors(FakeEngine(), host), Notes().reporter(),
        head="192.168.100.1", firewall=True,
    )  # fmt: skip
    loaded = [rules for name, rules in host.calls if name == "apply_firewall"]
    assert started.firewall_loaded and loaded == [started.firewall]
    with pytest.raises(UsageError, match="goes with a worker beyond loopback"):
        workers.worker_up(
            cpu_plan(tmp_path), parse_listen("127.0.0.1"), executors(FakeEngine(), host), Notes().reporter(),
            firewall=True,
        )  # fmt: skip


def test_the_heads_port_may_be_the_last_one_now_that_llama_server_needs_none() -> None:
    """With RPC workers llama-server once listened one port above the published one (65535 gave it
    65536); it now listens on its socket, so every published port is whole."""
    plan = fixed_plan("dgx-spark", "default", {"rpc": "192.168.100.2:50052", "port": 65535})
    assert plan.compose is not None
    assert plan.compose["services"]["proxy"]["ports"] == ["127.0.0.1:65535:8443"]
    assert "65536" not in json.dumps(plan.to_dict())


def test_an_endpoint_is_written_as_rpc_server_and_llama_server_read_it() -> None:
    from orchestrator.core.rpc import rpc_arg

    assert str(Endpoint("192.168.100.2", 50052)) == "192.168.100.2:50052"
    assert str(Endpoint("fd00::2", 50052)) == "[fd00::2]:50052"
    assert rpc_arg((Endpoint("10.0.0.2", 1), Endpoint("fd00::2", 2))) == ["--rpc", "10.0.0.2:1,[fd00::2]:2"]
    # No workers: no --rpc at all (an empty list would be a malformed flag).
    assert rpc_arg(()) == []


@pytest.mark.parametrize("port", ["1", "65535"])
def test_a_port_at_either_end_of_the_range_is_taken(port: str) -> None:
    assert parse_listen(f"10.0.0.2:{port}") == Endpoint("10.0.0.2", int(port))
    assert parse_workers(f"[fd00::2]:{port}") == (Endpoint("fd00::2", int(port)),)


@pytest.mark.parametrize("port", ["0", "65536", "x"])
def test_a_port_beyond_the_range_is_refused_and_named(port: str) -> None:
    with pytest.raises(ValueError, match=rf"^worker '10\.0\.0\.2:{port}': port '{port}' is not 1-65535 "):
        parse_workers(f"10.0.0.2:{port}")


@pytest.mark.parametrize("text", ["[fd00::2]x", "[fd00::2]]:1", "10.0.0.2"])
def test_a_worker_without_a_port_or_with_junk_after_its_address_is_refused(text: str) -> None:
    """The head must name each worker's port (a worker has no port the head could guess), and nothing
    may follow an IPv6 address's bracket but :PORT."""
    with pytest.raises(ValueError) as refused:
        parse_workers(text)
    assert str(refused.value) == (
        f"worker {text!r}: expected ADDRESS:PORT (write workers as ADDRESS:PORT[,ADDRESS:PORT...])"
    )
    # Where the worker's own port has a default, a bare IPv6 address in brackets takes it, and junk
    # after the bracket is still refused.
    assert parse_listen("[fd00::2]") == Endpoint("fd00::2", 50052)
    with pytest.raises(UsageError, match=r"^--listen \[fd00::2\]x: expected ADDRESS:PORT; "):
        parse_listen("[fd00::2]x")


def test_an_ipv6_zone_is_kept_and_an_ipv4_address_has_none() -> None:
    assert parse_listen("[fe80::2%enp1s0]:50060") == Endpoint("fe80::2%enp1s0", 50060)
    with pytest.raises(UsageError, match=r"'10\.0\.0\.2%enp1s0' is not an IP address"):
        parse_listen("10.0.0.2%enp1s0")


@pytest.mark.parametrize("text", ["224.0.0.1", "240.0.0.1", "[ff02::1]"])
def test_multicast_and_reserved_addresses_are_no_place_to_listen(text: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_listen(text)
    assert str(refused.value).startswith(f"--listen {text}: not an address a machine listens on; join the")


def test_the_workers_list_passes_over_empty_items_and_refuses_a_worker_named_twice() -> None:
    assert parse_workers(",10.0.0.2:1,, 10.0.0.3:1,") == (Endpoint("10.0.0.2", 1), Endpoint("10.0.0.3", 1))
    with pytest.raises(ValueError) as twice:
        parse_workers("10.0.0.2:1, 10.0.0.2:1")
    assert str(twice.value) == "a worker is named twice"


def test_the_head_is_one_address_written_as_python_writes_it() -> None:
    from orchestrator.core.rpc import parse_head

    assert parse_head(" 192.168.100.1 ") == "192.168.100.1"
    assert parse_head("FD00:0::1") == "fd00::1"
    with pytest.raises(UsageError) as refused:
        parse_head("head.lan")
    assert str(refused.value) == (
        "--head head.lan: 'head.lan' is not an IP address; give the head's address on the link, "
        "e.g. 192.168.100.1"
    )
    with pytest.raises(UsageError, match=r"^--head ff02::1: one machine's address, e.g\. 192\.168\.100\.1$"):
        parse_head("ff02::1")


def test_each_refusal_of_a_worker_beyond_loopback_says_what_to_do() -> None:
    import ipaddress

    from orchestrator.core.rpc import LinkAddress, check_listen

    link = LinkAddress("enp1s0f0np0", ipaddress.ip_network("192.168.100.0/24"))
    listen = parse_listen("192.168.100.2")
    with pytest.raises(UsageError) as no_head:
        check_listen(listen, None, link)
    assert str(no_head.value) == (
        "--listen 192.168.100.2:50052: beyond loopback name the head this worker serves (--head ADDRESS on "
        "the same link): rpc-server has no authentication, and the firewall rule admits the head alone"
    )
    with pytest.raises(UsageError) as not_here:
        check_listen(listen, "192.168.100.1", None)
    assert str(not_here.value) == (
        "--listen 192.168.100.2:50052: no interface of this machine has that address; give this machine's "
        "address on the link (ip -brief address)"
    )
    with pytest.raises(UsageError) as elsewhere:
        check_listen(listen, "10.0.0.1", link)
    assert str(elsewhere.value) == (
        "--head 10.0.0.1 is not on 192.168.100.2's link (192.168.100.0/24 on enp1s0f0np0); give the "
        "head's address on that link"
    )


def test_the_firewall_rule_is_one_whole_nft_table_replaced_on_each_load() -> None:
    """The table is declared, deleted and made again, so loading the file twice leaves one copy of the
    rule (nft -f runs it as one transaction); this machine's own connections pass, any other source but
    the head is dropped, and every other port is left as it was."""
    from orchestrator.core.rpc import firewall_rules

    assert firewall_rules(parse_listen("192.168.100.2:50060"), "192.168.100.1") == (
        "table inet step_flash_rpc_50060\n"
        "delete table inet step_flash_rpc_50060\n"
        "table inet step_flash_rpc_50060 {\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        "    ip daddr 192.168.100.2 tcp dport 50060 fib saddr type local accept\n"
        "    ip daddr 192.168.100.2 tcp dport 50060 ip saddr != 192.168.100.1 drop\n"
        "  }\n"
        "}\n"
    )
