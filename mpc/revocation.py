"""Certificate revocation: the consortium CRL, watched CRLs, and ``mpc certs revoke``.

Split from :mod:`mpc.identity` (which re-exports every name here). A CRL is signed by the
consortium CA; servers watch theirs (:func:`watch_revocations`) and refuse the certificates it
lists from the next call on, without a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mpc.errors import ConfigError
from mpc.sharing import SigningKey

log = logging.getLogger("mpc.identity")  # the logger these messages always used


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
    "Revocation",
    "RevocationList",
    "forget_revocations",
    "load_crl",
    "revoke_certificate",
    "revoked_by",
    "watch_revocations",
]
