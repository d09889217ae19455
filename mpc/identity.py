"""Certificates: the consortium CA, role certificates, and identity checks.

Pure apart from the explicit file helpers. Every participant holds a certificate issued by one
consortium CA. The certificate says *who* (common name and a DNS subjectAltName equal to the
party id, ``coordinator`` or a client name) and in *which role* (organizational unit
``party``, ``coordinator`` or ``client``). A party's identity is the name in its certificate;
an id claimed in any message must equal it.

Issuing certificates lives in :mod:`mpc.certificates` and revocation in
:mod:`mpc.revocation`; this module re-exports their names (issuing lazily, as it imports this
module).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from mpc.errors import ConfigError, ProtocolError
from mpc.revocation import (
    CRL_FILE,
    Revocation,
    RevocationList,
    forget_revocations,
    load_crl,
    revoke_certificate,
    revoked_by,
    watch_revocations,
)
from mpc.sharing import SigningKey

if TYPE_CHECKING:
    from mpc.certificates import (
        LOCAL_HOSTS,
        SERVER_ROLES,
        init_certificates,
        issue_certificate,
        make_ca,
        write_pem_certificate,
    )

#: Party ids double as DNS names in certificates, so they follow DNS label rules.
PARTY_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_NAMES = frozenset({"coordinator", "ca"})
#: A certificate that expires within this many days gets a warning from ``mpc health``.
EXPIRY_WARNING_DAYS = 30

log = logging.getLogger(__name__)


class Role(StrEnum):
    PARTY = "party"
    COORDINATOR = "coordinator"
    CLIENT = "client"
    ADMIN = "admin"  # a client that may also see and watch every client's jobs


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


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _display_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else f"serial {cert.serial_number:#x}"


def validity_problem(cert: x509.Certificate, now: dt.datetime | None = None) -> str | None:
    """Why ``cert`` is not valid at ``now`` (expired, or not yet valid), or None if it is."""
    moment = now or dt.datetime.now(dt.UTC)
    name = _display_name(cert)
    if moment > cert.not_valid_after_utc:
        return f"certificate of {name!r} expired on {_when(cert.not_valid_after_utc)}"
    if moment < cert.not_valid_before_utc:
        return (
            f"certificate of {name!r} is not yet valid (valid from "
            f"{_when(cert.not_valid_before_utc)}; is a clock wrong?) and is refused like an "
            "expired one"
        )
    return None


def require_valid_own_certificate(identity: Identity, where: Path | str) -> None:
    """Raise :class:`ConfigError` if our own certificate (from ``where``) is expired or not
    yet valid: peers would refuse the TLS handshake with no more than "socket closed"."""
    problem = validity_problem(identity.certificate)
    if problem is not None:
        raise ConfigError(
            f"{where}: {problem}; peers refuse it, so get a new certificate from the consortium CA"
        )


def days_left(cert: x509.Certificate, now: dt.datetime | None = None) -> float:
    """Days until ``cert`` expires (negative once it has)."""
    moment = now or dt.datetime.now(dt.UTC)
    return (cert.not_valid_after_utc - moment).total_seconds() / 86400.0


def revoked_problem(cert: x509.Certificate, ca_cert: x509.Certificate | None = None) -> str | None:
    """A message naming ``cert``'s holder if a watched CRL revokes it, else None.

    Only CRLs registered with :func:`watch_revocations` count (servers register theirs when
    they start); ``ca_cert`` limits the check to that CA's CRLs.
    """
    if revoked_by(cert, ca_cert) is None:
        return None
    return (
        f"certificate of {_display_name(cert)!r} (serial {cert.serial_number:#x}) is revoked "
        "by the consortium CA"
    )


#: (certificate, CA) SHA-256 fingerprint pairs whose issuer signature verified. The signature
#: of a given DER encoding never changes, so it is checked once; validity dates, revocation,
#: role and names are checked on every call.
_ISSUED: dict[tuple[bytes, bytes], None] = {}
_ISSUED_LIMIT = 4096
_ISSUED_LOCK = threading.Lock()


def _check_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> None:
    key = (cert.fingerprint(hashes.SHA256()), ca_cert.fingerprint(hashes.SHA256()))
    with _ISSUED_LOCK:
        if key in _ISSUED:
            return
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception as exc:  # signature, issuer name or algorithm mismatch
        raise ProtocolError("certificate was not issued by the consortium CA") from exc
    with _ISSUED_LOCK:
        if len(_ISSUED) >= _ISSUED_LIMIT:
            _ISSUED.pop(next(iter(_ISSUED)))
        _ISSUED[key] = None


def verify_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    expected_name: str | None,
    expected_role: Role,
    now: dt.datetime | None = None,
    check_revocation: bool = True,
) -> None:
    """Check ``cert`` was issued by ``ca_cert``, is valid now, and names the expected peer.

    With ``check_revocation`` (the default) a certificate on a CRL this process watches for
    ``ca_cert`` (see :func:`watch_revocations`) is refused too.
    """
    _check_issued_by(cert, ca_cert)
    problem = validity_problem(cert, now)
    if problem is None and check_revocation:
        problem = revoked_problem(cert, ca_cert)
    if problem is not None:
        raise ProtocolError(problem)
    name = cert_name(cert)
    if cert_role(cert) != expected_role.value:
        raise ProtocolError(f"certificate of {name!r} is not a {expected_role.value} certificate")
    if name not in cert_dns_names(cert):
        raise ProtocolError(f"certificate of {name!r} has no subjectAltName for its name")
    if expected_name is not None and name != expected_name:
        raise ProtocolError(
            f"certificate names {name!r} but the peer claims to be {expected_name!r}"
        )


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    #: Certificate revocation list (PEM) from `mpc certs revoke`; None: ``crl.pem`` beside
    #: the CA certificate, when that file exists.
    crl: Path | None = None

    @property
    def crl_path(self) -> Path:
        return self.crl if self.crl is not None else self.ca.with_name("crl.pem")

    def load(self) -> Identity:
        return load_identity(self.ca, self.cert, self.key)

    @classmethod
    def from_dir(cls, directory: Path, name: str) -> TlsFiles:
        return cls(
            ca=directory / "ca.pem", cert=directory / f"{name}.pem", key=directory / f"{name}.key"
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

    # Parsed once per identity (every job verifies against the CA and signs an offer).
    @functools.cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @functools.cached_property
    def ca_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_pem)

    def signing_key(self) -> SigningKey:
        return self._signing_key

    @functools.cached_property
    def _signing_key(self) -> SigningKey:
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


#: Names served from :mod:`mpc.certificates` (imported on first use: it imports this module).
_ISSUING = frozenset(
    {
        "LOCAL_HOSTS",
        "SERVER_ROLES",
        "init_certificates",
        "issue_certificate",
        "make_ca",
        "write_pem_certificate",
    }
)


def __getattr__(name: str) -> Any:
    if name in _ISSUING:
        from mpc import certificates

        return getattr(certificates, name)
    raise AttributeError(f"module 'mpc.identity' has no attribute {name!r}")


__all__ = [
    "CRL_FILE",
    "EXPIRY_WARNING_DAYS",
    "LOCAL_HOSTS",
    "SERVER_ROLES",
    "Identity",
    "Revocation",
    "RevocationList",
    "Role",
    "TlsFiles",
    "cert_name",
    "cert_role",
    "check_party_id",
    "days_left",
    "forget_revocations",
    "init_certificates",
    "issue_certificate",
    "load_crl",
    "load_identity",
    "make_ca",
    "require_valid_own_certificate",
    "revoke_certificate",
    "revoked_by",
    "revoked_problem",
    "validity_problem",
    "verify_certificate",
    "watch_revocations",
    "write_pem_certificate",
]
