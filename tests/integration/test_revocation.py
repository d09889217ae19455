"""Revoked and expired certificates against real processes: refused, without a restart."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpc.cli import main
from mpc.client import Client
from mpc.errors import AccessDeniedError, ConfigError, JobFailedError
from mpc.identity import (
    Role,
    forget_revocations,
    issue_certificate,
    load_identity,
    write_pem_certificate,
)
from mpc.proto.v1 import coordinator_pb2, coordinator_pb2_grpc
from mpc.transport.health import health_report
from mpc.transport.tls import secure_channel
from tests.integration.conftest import ClusterFactory

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _no_watched_crls() -> Iterator[None]:
    yield
    forget_revocations()  # health/verify calls in this process must not keep test CRLs


def issue(tls_dir: Path, name: str, *, start: dt.datetime | None = None, days: int = 30) -> None:
    """Add a client certificate ``tls_dir/NAME.pem`` (and key) from the cluster's CA."""
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((tls_dir / "ca.pem").read_bytes())
    key, cert = issue_certificate(ca_key, ca, name, Role.CLIENT, days=days, not_before=start)
    (tls_dir / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    write_pem_certificate(tls_dir / f"{name}.pem", cert)


def revoke(tls_dir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["certs", "revoke", name, "--tls-dir", str(tls_dir), "--json"]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_revoked_client_is_refused_without_restart(
    make_cluster: ClusterFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = make_cluster(n_parties=2)
    issue(cluster.tls_dir, "eve")
    with Client(cluster.coordinator_address, tls_dir=cluster.tls_dir, name="eve") as eve:
        assert [p.party_id for p in eve.parties()] == ["a", "b"]
        assert revoke(cluster.tls_dir, "eve", capsys)["already_revoked"] is False
        # The same connection: the coordinator re-reads the CRL and refuses the next call.
        with pytest.raises(AccessDeniedError, match=r"certificate of 'eve' \(serial .*revoked"):
            eve.parties()
    assert revoke(cluster.tls_dir, "eve", capsys)["already_revoked"] is True
    # The CLI says so too; other clients are unaffected.
    argv = ["parties", "--coordinator", cluster.coordinator_address]
    assert main([*argv, "--tls-dir", str(cluster.tls_dir), "--name", "eve"]) == 1
    err = capsys.readouterr().err
    assert "'eve'" in err and "revoked" in err
    with cluster.client() as client:
        assert len(client.parties()) == 2
    # The party's health: serving, and a warning once its certificate nears its expiry.
    config = cluster.workdir / "party-a-health.toml"  # the real port, not the launcher's 0
    config.write_text(
        cluster.party_config_path("a")
        .read_text()
        .replace('"127.0.0.1:0"', json.dumps(cluster.addresses["a"]))
    )
    assert main(["health", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    a = x509.load_pem_x509_certificate((cluster.tls_dir / "a.pem").read_bytes())
    soon = health_report(config, now=a.not_valid_after_utc - dt.timedelta(days=5))
    assert soon.serving and "expires in 5 day(s)" in soon.warnings[0]


def test_revoked_party_cannot_serve_a_job(
    make_cluster: ClusterFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = make_cluster(n_parties=3)
    with cluster.client() as client:
        assert client.sum("people", ["age"]).value > 0
        revoke(cluster.tls_dir, "a", capsys)
        # b and c refuse a's signed key offer: the job fails and reveals nothing.
        with pytest.raises(JobFailedError, match=r"certificate of 'a' \(serial .*revoked"):
            client.sum("people", ["age"])
        # Without the CRL file nothing is revoked (re-read, no restart) ...
        (cluster.tls_dir / "crl.pem").unlink()
        assert client.sum("people", ["age"]).value > 0
        # ... and a revoked coordinator is refused by every party.
        revoke(cluster.tls_dir, "coordinator", capsys)
        with pytest.raises(JobFailedError, match=r"'coordinator'.*revoked"):
            client.sum("people", ["age"])
    log = (cluster.log_dir / "b.log").read_text()
    assert "revoked" in log


def test_expired_client_certificate_is_refused(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(n_parties=2)
    issue(cluster.tls_dir, "old", start=NOW - dt.timedelta(days=40), days=30)
    issue(cluster.tls_dir, "early", start=NOW + dt.timedelta(days=1), days=30)
    for name, message in (("old", "'old' expired on"), ("early", "'early' is not yet valid")):
        with pytest.raises(ConfigError, match=message):
            Client(cluster.coordinator_address, tls_dir=cluster.tls_dir, name=name)
        # Past the client's own check, the coordinator refuses the TLS handshake itself.
        tls = cluster.tls_dir
        identity = load_identity(tls / "ca.pem", tls / f"{name}.pem", tls / f"{name}.key")
        with secure_channel(cluster.coordinator_address, identity, "coordinator") as channel:
            stub = coordinator_pb2_grpc.CoordinatorStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListParties(coordinator_pb2.ListPartiesRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with cluster.client() as client:
        assert len(client.parties()) == 2
