"""Revocation (`mpc certs revoke`, CRLs honoured by servers) and certificate expiry."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpc.cli import main
from mpc.client import Client
from mpc.demo.cluster import DatasetFile, party_config_text
from mpc.errors import AccessDeniedError, ConfigError, ProtocolError
from mpc.identity import (
    Role,
    forget_revocations,
    init_certificates,
    issue_certificate,
    load_crl,
    load_identity,
    revoke_certificate,
    verify_certificate,
    watch_revocations,
    write_pem_certificate,
)
from mpc.protocol.secure_sum import PartySession
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic
from mpc.transport.health import health_report
from mpc.transport.tls import require_role

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _no_watched_crls() -> Iterator[None]:
    forget_revocations()
    yield
    forget_revocations()


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """A CA of its own: revoking must not touch the session-wide certificates."""
    out = tmp_path / "certs"
    init_certificates(out, ["a", "b", "c"], clients=("client", "eve"))
    return out


def _cert(certs: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((certs / f"{name}.pem").read_bytes())


def _issue(certs: Path, name: str, role: Role, *, start: dt.datetime, days: int) -> None:
    """Write ``certs/NAME.pem`` and ``.key`` valid from ``start`` for ``days``."""
    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = issue_certificate(
        ca_key, _cert(certs, "ca"), name, role, days=days, not_before=start
    )
    (certs / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    write_pem_certificate(certs / f"{name}.pem", cert)


class FakeContext:
    """What require_role reads from a gRPC servicer context."""

    def __init__(self, pem: bytes | None) -> None:
        self._auth = {"x509_pem_cert": [pem]} if pem is not None else {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


# --- the CRL file ------------------------------------------------------------------------


def test_crl_round_trip(certs: Path, tmp_path: Path) -> None:
    ca = _cert(certs, "ca")
    first = revoke_certificate(certs, "eve")
    assert (first.name, first.already_revoked, first.revoked_count) == ("eve", False, 1)
    assert first.crl == certs / "crl.pem"
    assert first.serial == _cert(certs, "eve").serial_number
    second = revoke_certificate(certs, "a")
    assert second.revoked_count == 2
    crl = load_crl(certs / "crl.pem", ca)
    assert {entry.serial_number for entry in crl} == {
        _cert(certs, "eve").serial_number,
        _cert(certs, "a").serial_number,
    }
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.next_update_utc is not None and crl.next_update_utc > NOW
    # Another CA's CRL (same CA name, other key) is refused.
    other = tmp_path / "other"
    init_certificates(other, ["a"])
    revoke_certificate(other, "a")
    with pytest.raises(ConfigError, match="not signed by the consortium CA"):
        load_crl(other / "crl.pem", ca)
    (tmp_path / "junk.pem").write_text("not a CRL")
    with pytest.raises(ConfigError, match="not a certificate revocation list"):
        load_crl(tmp_path / "junk.pem", ca)


def test_revoke_is_idempotent(certs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    revoke_certificate(certs, "eve")
    before = (certs / "crl.pem").read_bytes()
    again = revoke_certificate(certs, "eve")
    assert again.already_revoked and again.revoked_count == 1
    assert (certs / "crl.pem").read_bytes() == before
    assert main(["certs", "revoke", "eve", "--tls-dir", str(certs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["already_revoked"] is True and out["name"] == "eve"
    assert main(["certs", "revoke", "eve", "--out", str(certs)]) == 0
    assert "already revoked" in capsys.readouterr().out


def test_revoke_unknown_name_is_a_clear_error(
    certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"no certificate named 'zed'.*a, b, c, client"):
        revoke_certificate(certs, "zed")
    for bad in ("ca", "crl", "../a", ""):
        with pytest.raises(ConfigError, match="not a certificate name"):
            revoke_certificate(certs, bad)
    assert main(["certs", "revoke", "zed", "--tls-dir", str(certs)]) == 2
    assert "no certificate named 'zed'" in capsys.readouterr().err
    assert not (certs / "crl.pem").exists()


def test_revoke_cli_writes_the_crl_beside_ca_pem(
    certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "revoke", "b", "--out", str(certs)]) == 0
    out = capsys.readouterr().out
    assert "revoked 'b'" in out and str(certs / "crl.pem") in out and "without a restart" in out
    custom = certs / "elsewhere.pem"
    assert main(["certs", "revoke", "c", "--tls-dir", str(certs), "--crl", str(custom)]) == 0
    serials = {e.serial_number for e in load_crl(custom, _cert(certs, "ca"))}
    assert serials == {_cert(certs, "c").serial_number}


def test_a_new_ca_drops_the_old_crl(certs: Path) -> None:
    revoke_certificate(certs, "a")
    init_certificates(certs, ["a", "b"], overwrite=True)
    assert not (certs / "crl.pem").exists()


# --- servers honour the CRL, re-read when it changes ---------------------------------------


def test_watched_crl_is_reread_when_it_changes(certs: Path) -> None:
    ca, eve, client = _cert(certs, "ca"), _cert(certs, "eve"), _cert(certs, "client")
    watched = watch_revocations(ca, certs / "crl.pem")  # no file yet: nothing revoked
    assert not watched.revokes(eve)
    revoke_certificate(certs, "eve")
    assert watched.revokes(eve) and not watched.revokes(client)
    revoke_certificate(certs, "client")
    assert watched.revokes(client)
    # A broken file is logged and the previous list kept; a removed file revokes nothing.
    (certs / "crl.pem").write_text("garbage")
    assert watched.revokes(eve)
    (certs / "crl.pem").unlink()
    assert not watched.revokes(eve)


def test_a_broken_crl_stops_a_server_from_starting(certs: Path) -> None:
    (certs / "crl.pem").write_text("garbage")
    with pytest.raises(ConfigError, match="not a certificate revocation list"):
        watch_revocations(_cert(certs, "ca"), certs / "crl.pem")


def test_require_role_refuses_revoked_and_expired_callers(certs: Path) -> None:
    watch_revocations(_cert(certs, "ca"), certs / "crl.pem")
    eve = FakeContext((certs / "eve.pem").read_bytes())
    assert require_role(eve, Role.CLIENT).name == "eve"
    revoke_certificate(certs, "eve")
    with pytest.raises(AccessDeniedError, match=r"certificate of 'eve' \(serial 0x.*revoked"):
        require_role(eve, Role.CLIENT)
    revoke_certificate(certs, "coordinator")
    coordinator = FakeContext((certs / "coordinator.pem").read_bytes())
    with pytest.raises(AccessDeniedError, match=r"'coordinator'.*revoked"):
        require_role(coordinator, Role.COORDINATOR)
    _issue(certs, "old", Role.CLIENT, start=NOW - dt.timedelta(days=3), days=1)
    with pytest.raises(AccessDeniedError, match="certificate of 'old' expired on"):
        require_role(FakeContext((certs / "old.pem").read_bytes()), Role.CLIENT)
    _issue(certs, "early", Role.CLIENT, start=NOW + dt.timedelta(days=1), days=10)
    with pytest.raises(AccessDeniedError, match=r"'early' is not yet valid.*expired"):
        require_role(FakeContext((certs / "early.pem").read_bytes()), Role.CLIENT)
    assert require_role(FakeContext((certs / "client.pem").read_bytes()), Role.CLIENT)


# --- certificate checks (key offers) -------------------------------------------------------


def test_expired_and_not_yet_valid_certificates_are_refused(certs: Path) -> None:
    ca = _cert(certs, "ca")
    _issue(certs, "x", Role.PARTY, start=NOW - dt.timedelta(days=10), days=5)
    with pytest.raises(ProtocolError, match=r"certificate of 'x' expired on \d{4}-\d\d-\d\d"):
        verify_certificate(_cert(certs, "x"), ca, expected_name="x", expected_role=Role.PARTY)
    _issue(certs, "y", Role.PARTY, start=NOW + dt.timedelta(hours=2), days=5)
    with pytest.raises(ProtocolError, match=r"'y' is not yet valid.*refused like an expired"):
        verify_certificate(_cert(certs, "y"), ca, expected_name="y", expected_role=Role.PARTY)
    # Both are fine at a moment inside their validity.
    verify_certificate(
        _cert(certs, "x"),
        ca,
        expected_name="x",
        expected_role=Role.PARTY,
        now=NOW - dt.timedelta(days=8),
    )


def test_revoked_party_key_offer_is_refused(certs: Path) -> None:
    ids = ["a", "b", "c"]
    spec = JobSpec(
        job_id="job-r",
        statistic=Statistic.VECTOR_SUM,
        dataset="v",
        columns=(ColumnBound("value", -1, 1),),
        frac_bits=16,
        participants=tuple(Participant(pid, 1) for pid in ids),
        vector_length=4,
    )
    identities = {
        pid: load_identity(certs / "ca.pem", certs / f"{pid}.pem", certs / f"{pid}.key")
        for pid in ids
    }
    watch_revocations(_cert(certs, "ca"), certs / "crl.pem")
    revoke_certificate(certs, "a")
    sessions = {pid: PartySession(spec, identities[pid]) for pid in ids}
    offers = [sessions[pid].offer() for pid in ids]
    with pytest.raises(ProtocolError, match=r"certificate of 'a' \(serial .*\) is revoked"):
        sessions["b"].agree(offers)
    # verify_certificate can skip the CRL when asked to.
    verify_certificate(
        _cert(certs, "a"),
        _cert(certs, "ca"),
        expected_name="a",
        expected_role=Role.PARTY,
        check_revocation=False,
    )


# --- the client's own certificate, and `mpc health` ----------------------------------------


def test_client_with_an_expired_certificate_gets_a_clear_error(certs: Path) -> None:
    _issue(certs, "old", Role.CLIENT, start=NOW - dt.timedelta(days=400), days=365)
    with pytest.raises(ConfigError, match=r"old\.pem: certificate of 'old' expired on .*new"):
        Client("127.0.0.1:1", tls_dir=certs, name="old")


def _party_config(tmp_path: Path, certs: Path) -> Path:
    """Party a's config; nothing listens on its port 1."""
    data = tmp_path / "a.csv"
    data.write_text("x\n1\n")
    path = tmp_path / "party.toml"
    path.write_text(
        party_config_text("a", "127.0.0.1:1", certs, {"v": DatasetFile(data, max_rows=10)})
    )
    return path


def test_health_fails_for_an_expired_certificate(
    certs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _party_config(tmp_path, certs)
    a = _cert(certs, "a")
    report = health_report(config, timeout=1, now=a.not_valid_after_utc + dt.timedelta(days=1))
    assert not report.serving and report.status == "CERTIFICATE_EXPIRED"
    assert "certificate of 'a' expired on" in report.message
    _issue(certs, "a", Role.PARTY, start=NOW - dt.timedelta(days=3), days=1)
    assert main(["health", "--config", str(config)]) == 1
    assert "expired" in capsys.readouterr().out
    assert main(["health", "--config", str(config), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["serving"] is False and out["certificate"]["days_left"] < 0


def test_health_fails_for_a_revoked_certificate(certs: Path, tmp_path: Path) -> None:
    config = _party_config(tmp_path, certs)
    revoke_certificate(certs, "a")
    report = health_report(config, timeout=1)
    assert not report.serving and report.status == "CERTIFICATE_REVOKED"
    assert "revoked" in report.message


def test_health_warns_30_days_before_expiry(certs: Path, tmp_path: Path) -> None:
    config = _party_config(tmp_path, certs)
    a = _cert(certs, "a")
    soon = health_report(config, timeout=0.5, now=a.not_valid_after_utc - dt.timedelta(days=12))
    assert soon.warnings and "expires in 12 day(s)" in soon.warnings[0]
    assert soon.to_json()["warnings"] == soon.warnings
    later = health_report(config, timeout=0.5, now=a.not_valid_after_utc - dt.timedelta(days=60))
    assert later.warnings == []
    assert not later.serving  # nothing listens on port 1


# --- `mpc certs init --admins` -------------------------------------------------------------


def test_certs_init_admins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["certs", "init", "--out", str(out), "--parties", "a,b", "--admins", "root"]) == 0
    assert "admins: root" in capsys.readouterr().out
    root = load_identity(out / "ca.pem", out / "root.pem", out / "root.key")
    assert root.role == Role.ADMIN.value
    assert os.stat(out / "root.key").st_mode & 0o777 == 0o600
    with pytest.raises(SystemExit):
        main(["certs", "init", "--help"])
    assert "--admins" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["certs", "revoke", "--help"])
    help_text = capsys.readouterr().out
    assert "--tls-dir" in help_text and "crl.pem" in help_text
