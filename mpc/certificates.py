"""Issuing certificates (``mpc certs init``): the consortium CA and role certificates.

Split from :mod:`mpc.identity` (which re-exports every name here). Private keys are written
with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc.errors import ConfigError
from mpc.identity import Role, check_party_id
from mpc.revocation import CRL_FILE


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: universally supported by TLS stacks (BoringSSL in gRPC) and fast to sign with.
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_ca(
    common_name: str = "mpc consortium CA", days: int = 365
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
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
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    role: Role,
    *,
    extra_hosts: tuple[str, ...] = (),
    days: int = 365,
    not_before: dt.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    for host in extra_hosts:
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            alt = x509.DNSName(host)
        if alt not in alt_names:
            alt_names.append(alt)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def write_pem_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


#: Host names every server certificate (coordinator, parties) from :func:`init_certificates`
#: carries besides its own name and ``extra_hosts`` (an IP address becomes an IP SAN).
LOCAL_HOSTS = ("localhost", "127.0.0.1")
SERVER_ROLES = frozenset({Role.COORDINATOR, Role.PARTY})


def init_certificates(
    out: Path,
    party_ids: list[str],
    *,
    clients: tuple[str, ...] = ("client",),
    admins: tuple[str, ...] = (),
    extra_hosts: tuple[str, ...] = (),
    days: int = 365,
    overwrite: bool = False,
) -> list[Path]:
    """Create a CA and certificates for the coordinator, each party and the clients in ``out``.

    Layout: ``ca.pem`` + ``ca.key`` (keep the CA key offline in production), and
    ``<name>.pem`` + ``<name>.key`` for ``coordinator``, every party id and every client.
    Private keys are written with mode 0600.
    """
    for party_id in party_ids:
        check_party_id(party_id)
    if len(set(party_ids)) != len(party_ids):
        raise ConfigError("party ids must be unique")
    names = ["coordinator", *party_ids, *clients, *admins]
    if len(set(names)) != len(names):
        raise ConfigError("client names must differ from party ids and 'coordinator'")
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and (out / "ca.pem").exists():
        raise ConfigError(f"{out / 'ca.pem'} exists; pass --force to replace the whole CA")
    (out / CRL_FILE).unlink(missing_ok=True)  # signed by the CA being replaced
    ca_key, ca_cert = make_ca(days=days)
    _write_private(out / "ca.key", ca_key)
    write_pem_certificate(out / "ca.pem", ca_cert)
    written = [out / "ca.pem", out / "ca.key"]
    roles = (
        [(Role.COORDINATOR, "coordinator")]
        + [(Role.PARTY, pid) for pid in party_ids]
        + [(Role.CLIENT, c) for c in clients]
        + [(Role.ADMIN, a) for a in admins]
    )
    for role, name in roles:
        # Servers also answer to localhost/127.0.0.1, so clients in other languages (grpc-js,
        # grpcurl) that dial 127.0.0.1 pass hostname verification without an override.
        hosts = (*extra_hosts, *LOCAL_HOSTS) if role in SERVER_ROLES else extra_hosts
        key, cert = issue_certificate(ca_key, ca_cert, name, role, extra_hosts=hosts, days=days)
        _write_private(out / f"{name}.key", key)
        write_pem_certificate(out / f"{name}.pem", cert)
        written += [out / f"{name}.pem", out / f"{name}.key"]
    return written


__all__ = [
    "LOCAL_HOSTS",
    "SERVER_ROLES",
    "init_certificates",
    "issue_certificate",
    "make_ca",
    "write_pem_certificate",
]
