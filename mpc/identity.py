"""Certificates: the consortium CA, role certificates, and identity checks.

Pure apart from the explicit file helpers. Every participant holds a certificate issued by one
consortium CA. The certificate says *who* (common name and a DNS subjectAltName equal to the
party id, ``coordinator`` or a client name) and in *which role* (organizational unit
``party``, ``coordinator`` or ``client``). A party's identity is the name in its certificate;
an id claimed in any message must equal it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc.errors import ConfigError, ProtocolError
from mpc.sharing import SigningKey

#: Party ids double as DNS names in certificates, so they follow DNS label rules.
PARTY_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_NAMES = frozenset({"coordinator", "ca"})


class Role(StrEnum):
    PARTY = "party"
    COORDINATOR = "coordinator"
    CLIENT = "client"


def check_party_id(party_id: str) -> str:
    """Return ``party_id`` if it is a valid party id, else raise :class:`ConfigError`."""
    if not PARTY_ID_PATTERN.match(party_id) or party_id in RESERVED_NAMES:
        raise ConfigError(
            f"invalid party id {party_id!r}: use 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit (not 'coordinator' or 'ca')"
        )
    return party_id


def cert_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ProtocolError("certificate has no common name")
    return str(names[0].value)


def cert_role(cert: x509.Certificate) -> str:
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(units[0].value) if units else ""


def cert_dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))


def verify_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    expected_name: str | None,
    expected_role: Role,
    now: dt.datetime | None = None,
) -> None:
    """Check ``cert`` was issued by ``ca_cert``, is valid now, and names the expected peer."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception as exc:  # signature, issuer name or algorithm mismatch
        raise ProtocolError("certificate was not issued by the consortium CA") from exc
    moment = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise ProtocolError("certificate is expired or not yet valid")
    name = cert_name(cert)
    if cert_role(cert) != expected_role.value:
        raise ProtocolError(f"certificate of {name!r} is not a {expected_role.value} certificate")
    if name not in cert_dns_names(cert):
        raise ProtocolError(f"certificate of {name!r} has no subjectAltName for its name")
    if expected_name is not None and name != expected_name:
        raise ProtocolError(
            f"certificate names {name!r} but the peer claims to be {expected_name!r}"
        )


@dataclass(frozen=True, repr=False)
class Identity:
    """A loaded certificate and private key. ``repr`` never shows the key."""

    name: str
    role: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, role={self.role!r})"

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def ca_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_pem)

    def signing_key(self) -> SigningKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, SigningKey):
            raise ConfigError("unsupported private key type (use EC, Ed25519 or RSA)")
        return key


def load_identity(ca_path: Path, cert_path: Path, key_path: Path) -> Identity:
    """Load and cross-check a CA, a certificate and its key from PEM files."""
    try:
        ca_pem = ca_path.read_bytes()
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS file: {exc.filename}: {exc.strerror}") from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"cannot parse PEM in {cert_path}, {key_path} or {ca_path}") from exc
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigError(f"private key {key_path} does not belong to certificate {cert_path}")
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:
        raise ConfigError(f"certificate {cert_path} was not issued by the CA in {ca_path}") from exc
    return Identity(
        name=cert_name(cert),
        role=cert_role(cert),
        cert_pem=cert_pem,
        key_pem=key_pem,
        ca_pem=ca_pem,
    )


# --- issuing certificates (``mpc certs init``) ---------------------------------------------


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
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
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


def init_certificates(
    out: Path,
    party_ids: list[str],
    *,
    clients: tuple[str, ...] = ("client",),
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
    names = ["coordinator", *party_ids, *clients]
    if len(set(names)) != len(names):
        raise ConfigError("client names must differ from party ids and 'coordinator'")
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and (out / "ca.pem").exists():
        raise ConfigError(f"{out / 'ca.pem'} exists; pass --force to replace the whole CA")
    ca_key, ca_cert = make_ca(days=days)
    _write_private(out / "ca.key", ca_key)
    write_pem_certificate(out / "ca.pem", ca_cert)
    written = [out / "ca.pem", out / "ca.key"]
    roles = (
        [(Role.COORDINATOR, "coordinator")]
        + [(Role.PARTY, pid) for pid in party_ids]
        + [(Role.CLIENT, c) for c in clients]
    )
    for role, name in roles:
        key, cert = issue_certificate(
            ca_key, ca_cert, name, role, extra_hosts=extra_hosts, days=days
        )
        _write_private(out / f"{name}.key", key)
        write_pem_certificate(out / f"{name}.pem", cert)
        written += [out / f"{name}.pem", out / f"{name}.key"]
    return written


__all__ = [
    "Identity",
    "Role",
    "cert_name",
    "cert_role",
    "check_party_id",
    "init_certificates",
    "issue_certificate",
    "load_identity",
    "make_ca",
    "verify_certificate",
]
