"""Who may reach the server: the exposure made of the settings, the proxy's configuration made of it,
the certificates, and bad input refused in one line before anything starts."""

from __future__ import annotations

import datetime
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.core.exposure import (
    exposure,
    exposure_problem,
    parse_host_names,
    parse_origins,
    parse_tls,
)
from orchestrator.core.plan.proxy import proxy_config, tls_files
from orchestrator.errors import UsageError
from orchestrator.executors import certificates
from tests.fakes import FakeEngine
from tests.unit.conftest import Cli

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
FACTS = {
    "hostname": "spark",
    "fqdn": "spark.lab.example",
    "addresses": ("127.0.0.1", "192.168.1.5", "fd00::5"),
}


def test_settings_values_are_checked() -> None:
    assert parse_tls("auto") == "auto" and parse_tls("off") == "off"
    assert parse_tls("/a/c.pem, /a/k.pem") == "/a/c.pem,/a/k.pem"
    with pytest.raises(ValueError):
        parse_tls("/only/one.pem")
    assert parse_origins("http://192.168.1.20:3000, HTTPS://WebUI.lan") == (
        "http://192.168.1.20:3000",
        "https://webui.lan",
    )
    for bad in ("webui.lan:3000", "http://x/path", "ftp://x", "http://x:99999", "*"):
        with pytest.raises(ValueError):
            parse_origins(bad)
    assert parse_host_names("Spark.lan,10.8.0.2") == ("spark.lan", "10.8.0.2")
    with pytest.raises(ValueError):
        parse_host_names("not a name")


def test_loopback_is_plain_http_and_answers_to_loopback_names_only() -> None:
    reach = exposure("127.0.0.1", 8080, "auto", (), (), **FACTS)  # type: ignore[arg-type]
    assert reach.scheme == "http" and reach.certificate is None
    assert reach.names == ("localhost", "127.0.0.1", "::1")
    assert reach.origins == ("http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080")


def test_every_address_is_https_and_covers_the_hosts_names() -> None:
    reach = exposure("0.0.0.0", 8080, "auto", ("http://192.168.1.20:3000",), ("spark.vpn",), **FACTS)  # type: ignore[arg-type]
    assert reach.scheme == "https" and reach.certificate == "local-ca"
    assert {"spark", "spark.local", "spark.lab.example", "192.168.1.5", "spark.vpn"} <= set(reach.names)
    assert "fd00::5" not in reach.names, "an IPv4 wildcard is not reached over IPv6"
    assert reach.public_host == "spark.vpn"
    assert "http://192.168.1.20:3000" in reach.origins and "https://spark:8080" in reach.origins
    assert "192.168.1.5" in reach.ip_addresses and "spark" in reach.dns_names


def test_exposure_needs_a_key_and_tls_or_a_confirmation() -> None:
    assert exposure_problem("127.0.0.1", "off", False, False) is None
    assert "without an API key" in (exposure_problem("0.0.0.0", "auto", False, False) or "")
    assert "in clear" in (exposure_problem("192.168.1.5", "off", True, False) or "")
    assert exposure_problem("192.168.1.5", "off", True, True) is None


def test_the_proxy_refuses_foreign_hosts_first_and_answers_cors_for_allowed_origins_only() -> None:
    reach = exposure("127.0.0.1", 8080, "auto", ("http://127.0.0.1:3000",), (), **FACTS)  # type: ignore[arg-type]
    config = proxy_config(reach, ":8443", "unix//run/step-flash/llama-server.sock", fallback_page=True)
    server = config["apps"]["http"]["servers"]["step-flash"]
    framed = server["routes"][0]
    assert framed["handle"][0]["response"]["set"]["X-Frame-Options"] == ["DENY"] and "match" not in framed
    first = server["routes"][1]
    assert first["match"] == [{"not": [{"host": ["localhost", "127.0.0.1", "::1"]}]}]
    assert first["handle"][0]["status_code"] == 421 and first["terminal"]
    allowed = {"header": {"Origin": ["http://127.0.0.1:3000", *reach.origins[1:]]}}
    assert allowed["header"]["Origin"] == list(reach.origins)
    preflight = server["routes"][2]
    assert preflight["match"] == [{**allowed, "method": ["OPTIONS"]}] and preflight["terminal"]
    # Any request with another Origin, or marked cross-site by its browser, is refused before
    # llama-server, whatever its method: no method matcher.
    refused = server["routes"][3]
    assert refused["handle"][0]["status_code"] == 403 and refused["terminal"]
    assert refused["match"] == [
        {"header": {"Origin": ["*"]}, "not": [allowed]},
        {"header": {"Sec-Fetch-Site": ["cross-site", "same-site"]}, "not": [allowed]},
    ]
    # Another page of this machine (another port of localhost) is not allowed unless named.
    assert "http://127.0.0.1:5173" not in reach.origins and "http://localhost:8080" in reach.origins
    proxied = server["routes"][-1]["handle"][0]
    assert proxied["upstreams"] == [{"dial": "unix//run/step-flash/llama-server.sock"}]
    assert "Access-Control-Allow-Origin" in proxied["headers"]["response"]["delete"]
    assert "tls" not in config["apps"] and "tls_connection_policies" not in server
    page = server["routes"][-2]
    assert page["match"][0]["path"] == ["/", "/index.html"]
    without = proxy_config(reach, ":8443", "u:1", fallback_page=False)
    assert not any(
        "handle_response" in r["handle"][0]
        for r in without["apps"]["http"]["servers"]["step-flash"]["routes"]
    )
    secure = proxy_config(
        exposure("0.0.0.0", 8080, "auto", (), (), **FACTS), ":8443", "u:1", fallback_page=False
    )  # type: ignore[arg-type]
    assert (
        secure["apps"]["tls"]["certificates"]["load_files"][0]["certificate"]
        == "/run/secrets/tls_certificate"
    )
    # Neither the request log nor the error log carries the headers (the key travels in one).
    logs = secure["logging"]["logs"]
    for name in ("requests", "default"):
        assert logs[name]["encoder"]["fields"]["request>headers"] == {"filter": "delete"}
    # Beyond loopback the page opened on this machine by a loopback name is its own origin too.
    assert "https://127.0.0.1:8080" in exposure("0.0.0.0", 8080, "auto", (), (), **FACTS).origins  # type: ignore[arg-type]


def test_local_authority_is_made_once_and_its_key_is_the_owners_alone(tmp_path: Path) -> None:
    files = tls_files(tmp_path, "step-flash")
    reach = exposure("0.0.0.0", 8080, "auto", (), (), **FACTS)  # type: ignore[arg-type]
    certificates.prepare(reach, files, now=NOW)
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_key.parent.stat().st_mode) == 0o700
    ca = files.ca_cert.read_bytes()
    leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spark.local" in sans.get_values_for_type(x509.DNSName)
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "192.168.1.5"}
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    # The proxy's copies: the chain and the key, in a folder only the owner opens.
    assert files.proxy_cert.read_bytes().startswith(files.server_cert.read_bytes())
    assert stat.S_IMODE(files.proxy_cert.parent.stat().st_mode) == 0o700
    served = certificates.described(reach, files)
    assert served is not None and served.trust_file == files.ca_cert and len(served.fingerprint) == 95

    # Again: nothing new. A new name, or the end near: a new server certificate, the same authority.
    serial = leaf.serial_number
    certificates.prepare(reach, files, now=NOW + datetime.timedelta(days=300))
    assert x509.load_pem_x509_certificate(files.server_cert.read_bytes()).serial_number == serial
    certificates.prepare(reach, files, now=NOW + datetime.timedelta(days=380))
    renewed = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    assert renewed.serial_number != serial and files.ca_cert.read_bytes() == ca
    wider = exposure("0.0.0.0", 8080, "auto", (), ("spark.home.arpa",), **FACTS)  # type: ignore[arg-type]
    certificates.prepare(wider, files, now=NOW + datetime.timedelta(days=380))
    again = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    assert again.serial_number != renewed.serial_number
    assert "spark.home.arpa" in again.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)


def _self_signed(tmp_path: Path, name: str, *, days: int = 30, start: int = -1) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=start))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_owners_files_are_checked(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "good")
    _other_cert, other_key = _self_signed(tmp_path, "other")
    old_cert, old_key = _self_signed(tmp_path, "old", days=-1, start=-30)
    certificates.check_owner_files(cert, key, NOW)
    with pytest.raises(UsageError, match="does not match"):
        certificates.check_owner_files(cert, other_key, NOW)
    with pytest.raises(UsageError, match="expired on"):
        certificates.check_owner_files(old_cert, old_key, NOW)
    with pytest.raises(UsageError, match="cannot read the TLS certificate"):
        certificates.check_owner_files(tmp_path / "missing.crt", key, NOW)
    key.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        certificates.check_owner_files(cert, key, NOW)


def test_bad_exposure_input_is_one_line_and_starts_nothing(
    tmp_path: Path, isolated_env: Path, cli: Cli, fake_executors: FakeEngine
) -> None:
    cert, key = _self_signed(tmp_path, "good")
    _other_cert, other_key = _self_signed(tmp_path, "other")
    old_cert, old_key = _self_signed(tmp_path, "old", days=-1, start=-30)
    readable = tmp_path / "key-readable"
    readable.write_text("secret\n")
    readable.chmod(0o644)
    private = tmp_path / "key-private"
    private.write_text("secret\n")
    private.chmod(0o600)
    base = ["up", "--target", "cpu", "--port", "18097", "--no-make-api-key"]
    cases = [
        ([*base, "--tls", f"{cert},{other_key}"], "does not match"),
        ([*base, "--tls", f"{old_cert},{old_key}"], "expired on"),
        ([*base, "--tls", f"{tmp_path / 'nothing.crt'},{key}"], "cannot read the TLS certificate"),
        ([*base, "--api-key-file", str(readable)], "chmod 600"),
        ([*base, "--host", "0.0.0.0", "--api-key-file", str(private), "--tls", "off"], "--allow-plain-http"),
        ([*base, "--host", "0.0.0.0"], "without an API key"),
        ([*base, "--cors", "webui.lan:3000"], "is not an origin"),
    ]
    for argv, words in cases:
        done = cli(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, (argv, done.stderr)
    # Nothing was written: no compose file, no certificate authority, no key.
    data = isolated_env / "data" / "step-flash-orchestrator"
    assert fake_executors.calls == []
    assert not (data / "compose").exists() and not (data / "tls").exists() and not (data / "keys").exists()


def test_up_makes_a_key_only_its_owner_reads_and_later_commands_find_it(isolated_env: Path) -> None:
    from orchestrator.app.config import load_settings, make_api_key, needs_key

    exposed = load_settings({"host": "0.0.0.0"})
    assert needs_key(exposed) and exposed.api_key_file is None
    made = make_api_key(exposed)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and len(made.read_text().strip()) >= 32
    again = load_settings({"host": "0.0.0.0"})
    assert again.api_key_file == made and again.origin("api_key_file") == "default: the key up made"
    assert not needs_key(again)
    # On loopback the key up made is not used unless asked for.
    assert load_settings({}).api_key_file is None


def _exposed_up(isolated_env: Path, model: Path) -> tuple[Path, list[str]]:
    """Where up makes its key, and an up beyond loopback with no key file."""
    made = isolated_env / "data" / "step-flash-orchestrator" / "keys" / "api-key"
    return made, ["up", "--target", "cpu", "--model", str(model), "--host", "0.0.0.0", "--port", "18123"]


def test_make_api_key_through_the_cli_with_and_without_a_terminal(
    isolated_env: Path, model: Path, fake_executors: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.app import cli

    made, base = _exposed_up(isolated_env, model)
    # No terminal, not told: refused at once, naming a flag that works; nothing made.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert cli.main(base) == 2
    assert not made.exists() and "compose_up" not in fake_executors.names()
    assert cli.main([*base, "--no-make-api-key"]) == 2 and not made.exists()
    # Told to: the key is made (only its owner reads it) and the server starts with it.
    assert cli.main([*base, "--make-api-key"]) == 0
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert fake_executors.names().count("compose_up") == 1
    # The next up finds that key without being told.
    assert cli.main(base) == 0


def test_make_api_key_asked_on_a_terminal(
    isolated_env: Path, model: Path, fake_executors: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.app import cli, render

    made, base = _exposed_up(isolated_env, model)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter([False, True])
    monkeypatch.setattr(render.Renderer, "ask", lambda self, question: next(answers))
    assert cli.main(base) == 2 and not made.exists()
    assert cli.main(base) == 0 and made.is_file()


def test_the_local_authority_signs_only_for_this_machines_names_and_private_addresses(tmp_path: Path) -> None:
    from cryptography.x509 import verification

    files = tls_files(tmp_path, "step-flash")
    reach = exposure("0.0.0.0", 8080, "auto", (), ("spark.tailnet.internal",), **FACTS)  # type: ignore[arg-type]
    certificates.prepare(reach, files)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    extension = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    permitted = {str(g.value) for g in extension.value.permitted_subtrees or []}
    assert {"local", "lan", "home.arpa", "localhost", "192.168.0.0/16", "10.0.0.0/8", "fc00::/7"} <= permitted
    assert "0.0.0.0/0" not in permitted and "com" not in permitted
    # The server certificate verifies under those constraints, as a client that enforces them checks.
    leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    store = verification.Store([ca])
    for name in ("localhost", "spark.tailnet.internal"):
        verifier = verification.PolicyBuilder().store(store).build_server_verifier(verification.DNSName(name))
        verifier.verify(leaf, [])
    # A certificate this authority signed for a public name is refused by such a client.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    ca_key = load_pem_private_key(files.ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example.com")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    verifier = (
        verification.PolicyBuilder()
        .store(store)
        .build_server_verifier(verification.DNSName("bank.example.com"))
    )
    with pytest.raises(verification.VerificationError):
        verifier.verify(forged, [])
    # A name outside its constraints, asked for later: one line, the way out, nothing made.
    public = exposure("0.0.0.0", 8080, "auto", (), ("llm.example.com",), **FACTS)  # type: ignore[arg-type]
    before = files.server_cert.read_bytes()
    with pytest.raises(UsageError, match=r"may not sign for llm\.example\.com") as refused:
        certificates.prepare(public, files)
    assert "\n" not in str(refused.value) and files.server_cert.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o601])
def test_a_key_file_others_may_touch_is_refused(tmp_path: Path, mode: int) -> None:
    from orchestrator.app.config import check_key_file

    key = tmp_path / "api-key"
    key.write_text("secret\n")
    key.chmod(mode)
    with pytest.raises(UsageError, match=f"chmod 600 {key}"):
        check_key_file(key)
    key.chmod(0o600)
    check_key_file(key)
    key.write_text("  \n")
    with pytest.raises(UsageError, match="is missing or empty"):
        check_key_file(key)
    with pytest.raises(UsageError, match="is missing or empty"):
        check_key_file(tmp_path / "absent")


def test_a_host_is_an_address_as_python_writes_it_or_a_host_name() -> None:
    from orchestrator.core.exposure import parse_host

    assert parse_host("[FD00::5]") == "fd00::5" and parse_host(" Spark.LAN ") == "spark.lan"
    with pytest.raises(ValueError) as refused:
        parse_host("spark_lan")
    assert str(refused.value) == "expected an IP address such as 127.0.0.1 or 0.0.0.0, or a host name"


def test_loopback_is_decided_by_the_address_written_bare_or_in_brackets() -> None:
    from orchestrator.core.exposure import is_loopback

    assert is_loopback("[::1]") and is_loopback("127.0.0.9")
    assert not is_loopback("[fd00::5]")


def test_tls_is_auto_on_off_or_the_owners_two_files() -> None:
    from orchestrator.core.exposure import tls_files

    assert parse_tls(" on ") == "on"
    for bad in ("/a/c.pem,", "/a/c.pem,/a/k.pem,/a/x.pem", "yes"):
        with pytest.raises(ValueError) as refused:
            parse_tls(bad)
        assert (
            str(refused.value) == "expected auto, on, off, or CERT,KEY (a certificate file and its key file)"
        )
    assert [tls_files(word) for word in ("auto", "on", "off")] == [None, None, None]
    assert tls_files("/a/c.pem,/a/k.pem") == (Path("/a/c.pem"), Path("/a/k.pem"))


def test_origins_are_written_as_browsers_send_them() -> None:
    # A trailing slash is dropped, none and empty items name nothing, and the same origin counts once.
    assert parse_origins("none, http://WebUI.lan/,,http://webui.lan, https://x:443") == (
        "http://webui.lan",
        "https://x",
    )
    assert parse_origins("none") == () and parse_origins(["http://[fd00::5]:3000"]) == (
        "http://[fd00::5]:3000",
    )


@pytest.mark.parametrize("port", [1, 65535])
def test_an_origins_port_may_be_either_end_of_the_range(port: int) -> None:
    assert parse_origins(f"http://webui.lan:{port}") == (f"http://webui.lan:{port}",)


@pytest.mark.parametrize("origin", ["http://webui.lan:0", "http://webui.lan:65536", "/http://webui.lan"])
def test_an_origin_beyond_the_port_range_or_malformed_is_refused_with_an_example(origin: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_origins(origin)
    assert str(refused.value) == (
        f"{origin!r} is not an origin: expected scheme://host[:port] such as http://192.168.1.20:3000 "
        "(http or https, no path)"
    )


def test_host_names_are_names_or_addresses_of_either_family() -> None:
    assert parse_host_names("Spark.lan,, FD00::5,10.8.0.2,spark.lan") == ("spark.lan", "fd00::5", "10.8.0.2")
    with pytest.raises(ValueError) as refused:
        parse_host_names("spark.lan, not a name")
    assert str(refused.value) == "'not a name' is neither a host name nor an IP address"


def test_the_owners_certificate_makes_https_on_loopback_too_and_is_the_one_served() -> None:
    reach = exposure("127.0.0.1", 8080, "/a/c.pem,/a/k.pem", (), (), **FACTS)
    assert (reach.scheme, reach.certificate, reach.loopback) == ("https", "owner", True)
    assert reach.owner_files == (Path("/a/c.pem"), Path("/a/k.pem"))
    assert exposure("127.0.0.1", 8080, "on", (), (), **FACTS).certificate == "local-ca"
    exposed = exposure("192.168.1.5", 8080, "off", (), (), **FACTS)
    assert (exposed.scheme, exposed.certificate, exposed.owner_files, exposed.loopback) == (
        "http",
        None,
        None,
        False,
    )


def test_a_specific_address_answers_to_loopback_names_itself_and_the_names_given() -> None:
    reach = exposure("fd00::5", 443, "auto", (), ("spark.vpn",), **FACTS)
    assert reach.names == ("localhost", "127.0.0.1", "::1", "fd00::5", "spark.vpn")
    assert reach.public_host == "fd00::5"
    # Its own origins: the scheme's default port left out, IPv6 in brackets.
    assert reach.origins == (
        "https://localhost",
        "https://127.0.0.1",
        "https://[::1]",
        "https://[fd00::5]",
        "https://spark.vpn",
    )


def test_a_wildcard_answers_to_this_machines_names_and_addresses_of_its_family() -> None:
    facts = {
        "hostname": "spark",
        "fqdn": "spark.lab.example",
        "addresses": ("127.0.0.1", "::1", "192.168.1.5", "fd00::5"),
    }
    four = exposure("0.0.0.0", 8080, "auto", (), (), **facts)
    assert four.names == (
        "localhost",
        "127.0.0.1",
        "::1",
        "spark",
        "spark.local",
        "spark.lab.example",
        "192.168.1.5",
    )
    assert four.public_host == "spark"
    six = exposure("::", 8080, "auto", (), (), **facts)
    assert six.names[-2:] == ("192.168.1.5", "fd00::5")


def test_a_host_name_with_a_domain_gets_no_local_name_and_no_name_falls_back_to_loopback() -> None:
    dotted = exposure("0.0.0.0", 8080, "auto", (), (), hostname="spark.lan", fqdn="", addresses=())
    assert dotted.names == ("localhost", "127.0.0.1", "::1", "spark.lan")
    nameless = exposure("0.0.0.0", 8080, "auto", (), (), hostname="", fqdn="", addresses=())
    assert nameless.names == ("localhost", "127.0.0.1", "::1") and nameless.public_host == "127.0.0.1"


def test_a_client_on_this_machine_reaches_a_wildcard_by_loopback_of_its_family() -> None:
    from orchestrator.core.exposure import connect_host

    assert [connect_host(h) for h in ("0.0.0.0", "::", "192.168.1.5")] == ["127.0.0.1", "::1", "192.168.1.5"]


def test_the_key_up_makes_is_found_again_where_earlier_versions_made_it() -> None:
    from orchestrator.core.exposure import made_key_path

    assert made_key_path(Path("/data")) == Path("/data/keys/api-key")


def test_each_exposure_refusal_names_the_ways_out() -> None:
    assert exposure_problem("0.0.0.0", "auto", False, False) == (
        "refusing to publish on 0.0.0.0 without an API key; pass --api-key-file FILE, let up make one "
        "(--make-api-key), or keep the default 127.0.0.1"
    )
    assert exposure_problem("192.168.1.5", "off", True, False) == (
        "tls is off and 192.168.1.5 is not loopback: the API key and every prompt would cross the network "
        "in clear; drop tls: off (HTTPS is the default beyond loopback) or confirm with --allow-plain-http"
    )
    # With a key and TLS, or plain HTTP confirmed, nothing stands in the way.
    assert exposure_problem("192.168.1.5", "auto", True, False) is None


def test_an_authority_first_made_on_loopback_still_signs_for_this_machine_on_the_lan(tmp_path: Path) -> None:
    """`--tls on` on loopback makes the authority; publishing on 0.0.0.0 later needs no new one, even on a
    machine whose name has no dot and whose address is not a private one."""
    facts = {"hostname": "vm", "fqdn": "vm", "addresses": ("127.0.0.1", "192.0.2.2")}
    files = tls_files(tmp_path, "step-flash")
    certificates.prepare(exposure("127.0.0.1", 8080, "on", (), (), **facts), files)  # type: ignore[arg-type]
    published = exposure("0.0.0.0", 8080, "auto", (), (), **facts)  # type: ignore[arg-type]
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    assert certificates.outside_constraints(ca, published) == []
    permitted = {
        str(g.value)
        for g in ca.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees or []
    }
    assert {"vm", "vm.local", "192.0.2.2/32"} <= permitted and "0.0.0.0/0" not in permitted
    certificates.prepare(published, files)  # signs for vm and 192.0.2.2 without a word


def test_the_machines_own_names_are_known_whatever_the_server_is_published_on() -> None:
    facts = {"hostname": "vm", "fqdn": "vm.lab.example", "addresses": ("127.0.0.1", "::1", "192.0.2.2")}
    for host in ("127.0.0.1", "0.0.0.0", "192.0.2.2"):
        reach = exposure(host, 8080, "auto", (), (), **facts)  # type: ignore[arg-type]
        assert reach.machine_names == ("vm", "vm.local", "vm.lab.example", "192.0.2.2")
    # On loopback the server still answers to loopback names only.
    assert "vm" not in exposure("127.0.0.1", 8080, "on", (), (), **facts).names  # type: ignore[arg-type]
