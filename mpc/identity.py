"""Certificates: the consortium CA, role certificates, and identity checks.

Pure apart from the explicit file helpers. Every participant holds a certificate issued by one
consortium CA. The certificate says *who* (common name and a DNS subjectAltName equal to the
party id, ``coordinator`` or a client name) and in *which role* (organizational unit
``party``, ``coordinator`` or ``client``). A party's identity is the name in its certificate;
an id claimed in any message must equal it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import os
import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc.errors import ConfigError, ProtocolError
from mpc.sharing import SigningKey

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


# --- revocation (``mpc certs revoke``) -------------------------------------------------------

#: The CRL's file name, beside ``ca.pem`` (``TlsFiles.crl_path`` in :mod:`mpc.config`).
CRL_FILE = "crl.pem"


def load_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList:
    """Read a CRL (PEM or DER) and check the consortium CA signed it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read CRL {path}: {exc.strerror}") from exc
    try:
        crl = (
            x509.load_pem_x509_crl(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_crl(data)
        )
    except ValueError as exc:
        raise ConfigError(f"{path} is not a certificate revocation list") from exc
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(
        ca_cert.public_key()  # type: ignore[arg-type]
    ):
        raise ConfigError(f"CRL {path} was not signed by the consortium CA")
    return crl


class RevocationList:
    """The serial numbers on one CRL file, re-read whenever the file changes.

    Every lookup compares the file's (inode, mtime, size) with the last read, so a CRL
    replaced by ``mpc certs revoke`` applies from the next call on, without a restart. A
    missing file revokes nothing. A file that fails to load when first read raises
    :class:`ConfigError`; later, the previous list is kept and the error logged.
    """

    def __init__(self, path: Path, ca_cert: x509.Certificate) -> None:
        self.path = path
        self.ca_cert = ca_cert
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._serials: frozenset[int] = frozenset()
        self._refresh(strict=True)

    def __repr__(self) -> str:
        return f"RevocationList({str(self.path)!r}, {len(self._serials)} revoked)"

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self, strict: bool = False) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            if stamp is None:
                if self._serials:
                    log.warning("CRL %s was removed: no certificate is revoked now", self.path)
                self._serials, self._stamp = frozenset(), None
                return
            try:
                crl = load_crl(self.path, self.ca_cert)
            except ConfigError as exc:
                if strict:
                    raise
                log.error("%s; still using the CRL read before", exc)
                self._stamp = stamp  # retried when the file changes again
                return
            self._serials = frozenset(entry.serial_number for entry in crl)
            self._stamp = stamp
            log.info("CRL %s: %d certificate(s) revoked", self.path, len(self._serials))

    @property
    def serials(self) -> frozenset[int]:
        self._refresh()
        return self._serials

    def revokes(self, cert: x509.Certificate) -> bool:
        if cert.issuer != self.ca_cert.subject or cert.serial_number not in self.serials:
            return False
        try:  # serials are per CA: make sure this CA issued the certificate
            cert.verify_directly_issued_by(self.ca_cert)
        except Exception:
            return False
        return True


_watched: dict[tuple[bytes, Path], RevocationList] = {}
_watched_lock = threading.Lock()


def _fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def watch_revocations(ca_cert: x509.Certificate, crl_path: Path) -> RevocationList:
    """Honour the CRL at ``crl_path`` (if it exists, now or later) in this process.

    Servers call this when they start; from then on :func:`verify_certificate` and the
    servers' caller checks refuse certificates of ``ca_cert`` that the CRL lists.
    """
    key = (_fingerprint(ca_cert), crl_path.resolve())
    with _watched_lock:
        watched = _watched.get(key)
        if watched is None:
            watched = _watched[key] = RevocationList(crl_path, ca_cert)
    return watched


def forget_revocations() -> None:
    """Stop honouring every watched CRL (for tests)."""
    with _watched_lock:
        _watched.clear()


def revoked_by(
    cert: x509.Certificate, ca_cert: x509.Certificate | None = None
) -> RevocationList | None:
    """The watched CRL that revokes ``cert`` (only ``ca_cert``'s, if given), or None."""
    with _watched_lock:
        watched = list(_watched.items())
    wanted = _fingerprint(ca_cert) if ca_cert is not None else None
    for (fingerprint, _), revocations in watched:
        if (wanted is None or fingerprint == wanted) and revocations.revokes(cert):
            return revocations
    return None


@dataclass(frozen=True)
class Revocation:
    """What ``mpc certs revoke`` did."""

    name: str
    serial: int
    crl: Path
    already_revoked: bool
    revoked_count: int  # certificates on the CRL now

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "serial": f"{self.serial:#x}",
            "crl": str(self.crl),
            "already_revoked": self.already_revoked,
            "revoked_count": self.revoked_count,
        }


def revoke_certificate(
    tls_dir: Path, name: str, *, crl_path: Path | None = None, now: dt.datetime | None = None
) -> Revocation:
    """Add ``tls_dir/NAME.pem`` to the CRL (``crl.pem`` beside ``ca.pem``), signed with
    ``ca.key``. Revoking a certificate already on the CRL changes nothing."""
    if not name or Path(name).name != name or name in {"ca", "crl"}:
        raise ConfigError(f"{name!r} is not a certificate name (use e.g. a party id or client)")
    cert_path = tls_dir / f"{name}.pem"
    if not cert_path.is_file():
        known = (
            sorted(p.stem for p in tls_dir.glob("*.pem") if p.stem not in {"ca", "crl"})
            if tls_dir.is_dir()
            else []
        )
        raise ConfigError(
            f"no certificate named {name!r}: {cert_path} does not exist"
            + (f" (certificates in {tls_dir}: {', '.join(known)})" if known else "")
        )
    crl_path = crl_path or tls_dir / CRL_FILE
    ca_path, ca_key_path = tls_dir / "ca.pem", tls_dir / "ca.key"
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {exc.filename}: {exc.strerror} (the CA key is needed to sign the CRL)"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"cannot parse {cert_path}, {ca_path} or {ca_key_path}") from exc
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception as exc:
        raise ConfigError(f"{cert_path} was not issued by the CA in {ca_path}") from exc
    if not isinstance(ca_key, SigningKey):
        raise ConfigError(f"unsupported CA key type in {ca_key_path}")
    previous = load_crl(crl_path, ca_cert) if crl_path.exists() else None
    entries = list(previous) if previous is not None else []
    if any(entry.serial_number == cert.serial_number for entry in entries):
        return Revocation(name, cert.serial_number, crl_path, True, len(entries))
    moment = now or dt.datetime.now(dt.UTC)
    number = 0
    if previous is not None:
        try:
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = 0
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(moment)
        .next_update(max(ca_cert.not_valid_after_utc, moment + dt.timedelta(days=1)))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    builder = builder.add_revoked_certificate(
        x509.RevokedCertificateBuilder()
        .serial_number(cert.serial_number)
        .revocation_date(moment)
        .build()
    )
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    crl = builder.sign(ca_key, algorithm)
    tmp = crl_path.with_name(crl_path.name + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, crl_path)  # atomic: servers never read half a CRL
    return Revocation(name, cert.serial_number, crl_path, False, len(entries) + 1)


__all__ = [
    "CRL_FILE",
    "EXPIRY_WARNING_DAYS",
    "Identity",
    "Revocation",
    "RevocationList",
    "Role",
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
]
