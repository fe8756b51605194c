"""The server's certificates, made with `cryptography`: a certificate authority made once per data
directory (its key readable by its owner alone), a server certificate it signs for the names the plan
answers to (made again when a name is missing or it nears its end), the owner's own files checked, and
the copies the proxy's container reads."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.core.exposure import Exposure, is_address
from orchestrator.core.plan.proxy import TlsFiles
from orchestrator.errors import UsageError
from orchestrator.files import write_atomic, write_for_container, write_private

CA_DAYS = 3650
# Under the 398 days Apple's and Chrome's rules allow a server certificate; made again 30 days before.
SERVER_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Shown:
    """What people are told to trust: the file, its SHA-256 fingerprint, and the server certificate's end."""

    trust_file: Path
    fingerprint: str
    not_after: datetime.datetime


def check(exposure: Exposure, files: TlsFiles, now: datetime.datetime | None = None) -> None:
    """What can refuse the plan's TLS before anything changes: the owner's files, or the local authority
    when there is one already (read, never written here)."""
    if exposure.owner_files is not None:
        check_owner_files(*exposure.owner_files, now or datetime.datetime.now(datetime.UTC))
    elif exposure.certificate == "local-ca" and files.ca_cert.is_file() and files.ca_key.is_file():
        ca_cert, _key = local_authority(files, now or datetime.datetime.now(datetime.UTC), exposure)
        _check_permits(ca_cert, exposure, files)


def prepare(exposure: Exposure, files: TlsFiles, *, now: datetime.datetime | None = None) -> None:
    """The certificate the proxy serves, in place for it: the owner's, or one from the local authority
    (made, or made again when a name is missing or its end is near)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if exposure.certificate is None:
        return
    if exposure.owner_files is not None:
        chain, key = check_owner_files(*exposure.owner_files, now)
        _install(files, chain, key)
        return
    ca_cert, ca_key = local_authority(files, now, exposure)
    _check_permits(ca_cert, exposure, files)
    _server_certificate(files, ca_cert, ca_key, exposure, now)
    _install(
        files, files.server_cert.read_bytes() + files.ca_cert.read_bytes(), files.server_key.read_bytes()
    )


def described(exposure: Exposure, files: TlsFiles) -> Shown | None:
    """What the proxy serves, once prepared (None: plain HTTP, or nothing prepared yet)."""
    try:
        if exposure.owner_files is not None:
            leaf = x509.load_pem_x509_certificates(exposure.owner_files[0].read_bytes())[0]
            return Shown(exposure.owner_files[0], fingerprint(leaf), leaf.not_valid_after_utc)
        if exposure.certificate == "local-ca":
            ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
            leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
            return Shown(files.ca_cert, fingerprint(ca), leaf.not_valid_after_utc)
    except (OSError, ValueError):
        return None
    return None


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def local_authority(
    files: TlsFiles, now: datetime.datetime, exposure: Exposure
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    """The data directory's certificate authority, made the first time it is needed: limited (X.509 name
    constraints) to the names and addresses it can have a reason to sign, so that a leaked ca.key is no
    key to every site the agents that trust it visit."""
    if files.ca_cert.is_file() and files.ca_key.is_file():
        try:
            cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise UsageError(
                f"{files.ca_cert} and {files.ca_key} are not this tool's certificate authority (a PEM "
                f"certificate and its EC key); restore them, or move the folder {files.ca_cert.parent} "
                "aside and up makes a new authority (clients must then trust the new ca.crt)"
            )
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "step-flash-orchestrator"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"step-flash-orchestrator local CA {os.uname().nodename}"
            ),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_constraints(exposure), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(files.ca_key, _key_pem(key))
    _write_public(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


# What the local authority may sign beyond the names it is made for: the names a home or office network
# gives machines (mDNS .local, .lan, RFC 8375's home.arpa, .internal) and the addresses that are not
# public (loopback, the private ranges, link-local, carrier-grade NAT as VPNs such as Tailscale use).
PERMITTED_DOMAINS = ("localhost", "local", "lan", "home.arpa", "internal")
PERMITTED_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)


def _constraints(exposure: Exposure) -> x509.NameConstraints:
    # The server's names now, and this machine's own whatever the server is published on now.
    names = dict.fromkeys((*exposure.names, *exposure.machine_names))
    domains = dict.fromkeys([*PERMITTED_DOMAINS, *(n for n in names if not is_address(n))])
    networks = [ipaddress.ip_network(n) for n in PERMITTED_NETWORKS]
    for address in (n for n in names if is_address(n)):
        if not any(ipaddress.ip_address(address) in n for n in networks):
            networks.append(ipaddress.ip_network(address))
    permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in domains]
    permitted += [x509.IPAddress(n) for n in networks]
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None)


def outside_constraints(ca_cert: x509.Certificate, exposure: Exposure) -> list[str]:
    """The server's names the authority may not sign for (none: it has no constraints, or covers all)."""
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return []
    subtrees = constraints.permitted_subtrees or []
    domains = [str(g.value).lower() for g in subtrees if isinstance(g, x509.DNSName)]
    networks = [g.value for g in subtrees if isinstance(g, x509.IPAddress)]
    outside = [
        n
        for n in exposure.dns_names
        if not any(n.lower() == d or n.lower().endswith("." + d) for d in domains)
    ]
    outside += [
        a
        for a in exposure.ip_addresses
        if not any(
            isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network) and ipaddress.ip_address(a) in net
            for net in networks
        )
    ]
    return outside


def _check_permits(ca_cert: x509.Certificate, exposure: Exposure, files: TlsFiles) -> None:
    outside = outside_constraints(ca_cert, exposure)
    if outside:
        raise UsageError(
            f"the local certificate authority ({files.ca_cert}) may not sign for {', '.join(outside)}: it is "
            f"limited to the names it was made for; move {files.ca_cert.parent} aside and up makes a new one "
            "that covers them (clients must then trust the new ca.crt), or give your own certificate "
            "(--tls CERT,KEY)"
        )


def _server_certificate(
    files: TlsFiles,
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    exposure: Exposure,
    now: datetime.datetime,
) -> None:
    if files.server_cert.is_file() and files.server_key.is_file():
        try:
            current = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        except ValueError:
            current = None  # not a certificate: made again below, like an expired one
        if current is not None and _still_good(current, ca_cert, exposure, now):
            return
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in exposure.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in exposure.ip_addresses]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, exposure.public_host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.server_key, _key_pem(key))
    _write_public(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def _still_good(
    cert: x509.Certificate, ca_cert: x509.Certificate, exposure: Exposure, now: datetime.datetime
) -> bool:
    """Signed by this authority, covering every name, and not within RENEW_BEFORE of its end."""
    try:
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    covered = {n.lower() for n in sans.get_values_for_type(x509.DNSName)}
    covered |= {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    wanted = set(exposure.dns_names) | {str(ipaddress.ip_address(a)) for a in exposure.ip_addresses}
    return wanted <= covered and cert.not_valid_after_utc - now > RENEW_BEFORE


def check_owner_files(cert_path: Path, key_path: Path, now: datetime.datetime) -> tuple[bytes, bytes]:
    """The owner's certificate (chain) and key: readable, in force, and a pair; the key not readable by
    others. The PEM bytes of both."""
    chain_pem = _read(cert_path, "certificate")
    key_pem = _read(key_path, "key")
    if key_path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"TLS key {key_path} can be read by others; chmod 600 {key_path}")
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError:
        raise UsageError(
            f"{cert_path} holds no PEM certificate; give the certificate file first: tls CERT,KEY"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise UsageError(
            f"{key_path} holds no unencrypted PEM private key; give the key file second: tls CERT,KEY"
        ) from None
    if leaf.not_valid_after_utc <= now:
        raise UsageError(
            f"certificate {cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}; renew it, or drop "
            "your own files (tls auto makes one)"
        )
    if leaf.not_valid_before_utc > now:
        raise UsageError(f"certificate {cert_path} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise UsageError(f"key {key_path} does not match certificate {cert_path}; give the pair's key")
    return chain_pem, key_pem


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the TLS {what} {path}: {exc.strerror}; check the path") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data.decode())  # PEM is ASCII
    path.chmod(0o644)


def _install(files: TlsFiles, chain: bytes, key: bytes) -> None:
    """The copies the proxy's container reads."""
    write_for_container(files.proxy_cert, chain)
    write_for_container(files.proxy_key, key)
