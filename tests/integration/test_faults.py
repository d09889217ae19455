"""Bad input and failures with real processes: a clear error, and nothing revealed."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpc.client import Client
from mpc.config import TlsFiles
from mpc.demo.cluster import LocalCluster, party_config_text
from mpc.errors import JobFailedError, QueryError, TransportError
from mpc.identity import Role, issue_certificate, load_identity, write_pem_certificate
from mpc.proto.v1 import party_pb2, party_pb2_grpc
from mpc.transport.tls import secure_channel
from tests.integration.conftest import CANARY, ClusterFactory, csv_paths, pooled

pytestmark = pytest.mark.integration


def assert_nothing_revealed(cluster: LocalCluster, job_id: str | None = None) -> None:
    """No failed job has a stored result, and the failed job's result cannot be read."""
    with sqlite3.connect(cluster.workdir / "coordinator.sqlite") as db:
        rows = db.execute(
            "SELECT job_id, results.vals FROM jobs LEFT JOIN results USING (job_id) "
            "WHERE state = 'failed'"
        ).fetchall()
    assert rows, "expected a failed job"
    assert all(result is None for _, result in rows)
    if job_id is not None:
        with cluster.client() as client, pytest.raises(JobFailedError):
            client.result(job_id)


def _failed_job(client: Client, *args: object, **kwargs: object) -> JobFailedError:
    with pytest.raises(JobFailedError) as info:
        client.query(*args, **kwargs)  # type: ignore[arg-type]
    assert repr(CANARY) not in str(info.value) and "7355608" not in str(info.value)
    return info.value


def test_unknown_dataset_and_column(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    with cluster.client() as client:
        error = _failed_job(client, "sum", "nope", ["age"])
        assert "unknown dataset 'nope'" in str(error)
        error = _failed_job(client, "sum", "people", ["weight"], (0.0, 1.0))
        assert "unknown column 'weight'" in str(error)
    assert_nothing_revealed(cluster, error.job_id)


def test_bad_cells_are_logged_for_the_operator_and_public_to_clients(
    make_cluster: ClusterFactory,
) -> None:
    """A bad cell makes its column unavailable when the file is loaded: the client sees the
    same public text for every kind of bad cell; the operator's log has file, line, column."""
    cluster = make_cluster()
    path = cluster.datasets["b"]["people"].path
    lines = path.read_text().splitlines()
    cases = [
        ("forty", "not a number"),
        ("", "missing value"),
        ("nan", "NaN or infinity"),
        ("-inf", "NaN or infinity"),
    ]
    with cluster.client() as client:
        for cell, _ in cases:
            broken = lines.copy()
            broken[4] = ",".join([cell, *lines[4].split(",")[1:]])
            path.write_text("\n".join(broken) + "\n")
            error = _failed_job(client, "mean", "people", ["age"])
            assert error.reason == "column 'age' of dataset 'people' is unavailable at party 'b'"
            assert str(path) not in str(error) and "line" not in str(error)
    log_text = (cluster.log_dir / "b.log").read_text()
    for _, message in cases:
        assert f"{path}), line 5, column 'age': {message}" in log_text
    assert_nothing_revealed(cluster, error.job_id)


def test_empty_dataset_contributes_zeros(make_cluster: ClusterFactory) -> None:
    """A header-only dataset is available with no rows: whether a job succeeds does not
    depend on a party's row count."""
    cluster = make_cluster()
    paths = csv_paths(cluster)
    path = cluster.datasets["c"]["people"].path
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with cluster.client() as client:
        count = client.count("people")
        total = client.sum("people", ["age"])
    assert count.value == sum(
        np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2).shape[0] for p in paths[:2]
    )
    assert total.value == pytest.approx(
        np.clip(pooled(paths[:2])[:, 0], 0, 120).sum(), abs=total.tolerance
    )


def test_bounds_lo_above_hi_is_refused_at_submit(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    with cluster.client() as client, pytest.raises(QueryError, match="above upper bound"):
        client.sum("people", ["age"], (10.0, 1.0))


def test_job_that_could_overflow_the_ring_is_refused(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    with cluster.client() as client:
        error = _failed_job(client, "sum", "people", ["income"], (-1e12, 1e12), frac_bits=40)
    assert "could wrap the 64-bit ring" in str(error) and "column 'income'" in str(error)
    assert "Narrow the bounds" in str(error)


def test_party_down_fails_the_job_naming_it_and_next_job_works(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster(job_timeout=10.0, rpc_timeout=3.0)
    cluster.stop_process("b")
    started = time.monotonic()
    with cluster.client() as client:
        error = _failed_job(client, "sum", "people", ["age"])
        assert time.monotonic() - started < 10.0 + 2.0
        assert "party 'b'" in str(error)
        assert_nothing_revealed(cluster, error.job_id)
        cluster.start_party("b")
        cluster._wait_ready("b")
        deadline = time.monotonic() + 15
        while True:  # gRPC reconnects with a short backoff
            try:
                result = client.count("people")
                break
            except JobFailedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert result.parties == ("a", "b", "c")


def test_party_that_stops_answering_fails_within_the_deadline(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster(job_timeout=6.0, rpc_timeout=2.0)
    with cluster.client() as client:
        client.count("people")  # channels are up
        cluster.signal("c", signal.SIGSTOP)
        try:
            started = time.monotonic()
            error = _failed_job(client, "mean", "people", ["age"])
            elapsed = time.monotonic() - started
        finally:
            cluster.signal("c", signal.SIGCONT)
    assert elapsed < 6.0 + 2.0
    assert "party 'c'" in str(error)
    assert "deadline" in str(error)
    assert_nothing_revealed(cluster, error.job_id)


def test_client_with_certificate_from_another_ca_is_refused(
    make_cluster: ClusterFactory, other_ca_dir: Path
) -> None:
    cluster = make_cluster()
    with (
        Client(cluster.coordinator_address, tls_dir=other_ca_dir, timeout=10) as client,
        pytest.raises(TransportError, match="unreachable or refused TLS"),
    ):
        client.count("people")


def test_client_without_certificate_is_refused(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    ca = (cluster.tls_dir / "ca.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)  # no client certificate
    options = [("grpc.ssl_target_name_override", "coordinator")]
    with grpc.secure_channel(cluster.coordinator_address, credentials, options) as channel:
        from mpc.proto.v1 import coordinator_pb2, coordinator_pb2_grpc

        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListParties(coordinator_pb2.ListPartiesRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_party_with_certificate_from_another_ca_is_refused(
    make_cluster: ClusterFactory, other_ca_dir: Path
) -> None:
    cluster = make_cluster()
    cluster.stop_process("b")
    config = cluster.party_config_path("b")
    config.write_text(
        party_config_text("b", cluster.addresses["b"], other_ca_dir, dict(cluster.datasets["b"]))
    )
    cluster._spawn("b", ["party", "serve", "--config", str(config)])
    cluster._wait_ready("b")
    with cluster.client() as client:
        error = _failed_job(client, "count", "people")
    assert "party 'b'" in str(error)
    assert "refused TLS" in str(error) or "unreachable" in str(error)
    assert_nothing_revealed(cluster, error.job_id)


def test_party_whose_certificate_names_another_id(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    # 1. A party process configured as 'b' but holding a's certificate refuses to start.
    config = cluster.workdir / "impostor.toml"
    text = party_config_text("b", "127.0.0.1:0", cluster.tls_dir, dict(cluster.datasets["b"]))
    config.write_text(text.replace("/b.pem", "/a.pem").replace("/b.key", "/a.key"))
    cluster._spawn("impostor", ["party", "serve", "--config", str(config)])
    with pytest.raises(Exception, match="certificate names 'a'"):
        cluster._wait_ready("impostor")
    # 2. The coordinator reaching 'b' at a's address sees a's certificate: refused by TLS.
    cluster.stop_process("coordinator")
    cluster.addresses["b"] = cluster.addresses["a"]
    cluster.start_coordinator()
    with cluster.client() as client:
        error = _failed_job(client, "count", "people")
    assert "party 'b'" in str(error)
    assert_nothing_revealed(cluster, error.job_id)


def test_only_the_coordinator_may_call_a_party(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    client_identity = TlsFiles.from_dir(cluster.tls_dir, "client").load()
    with secure_channel(cluster.addresses["a"], client_identity, "a") as channel:
        stub = party_pb2_grpc.PartyStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Describe(party_pb2.DescribeRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs a coordinator certificate" in info.value.details()


def test_a_second_coordinator_certificate_is_refused_by_the_parties(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    """The CA may issue more coordinator-role certificates; a party answers only the one
    coordinator its config names (``coordinator = "coordinator"`` by default)."""
    cluster = make_cluster()
    ca_key = serialization.load_pem_private_key((cluster.tls_dir / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((cluster.tls_dir / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = issue_certificate(ca_key, ca_cert, "rogue", Role.COORDINATOR)
    write_pem_certificate(tmp_path / "rogue.pem", cert)
    (tmp_path / "rogue.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rogue = load_identity(
        cluster.tls_dir / "ca.pem", tmp_path / "rogue.pem", tmp_path / "rogue.key"
    )
    with secure_channel(cluster.addresses["a"], rogue, "a") as channel:
        stub = party_pb2_grpc.PartyStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Describe(party_pb2.DescribeRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'rogue' is not this party's coordinator" in info.value.details()
    with cluster.client() as client:  # the real coordinator still works
        assert client.count("people").value > 0


def test_parties_can_not_submit_jobs(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster()
    with pytest.raises(QueryError, match="not a client's"):
        Client(cluster.coordinator_address, tls_dir=cluster.tls_dir, name="a")


def test_coordinator_restart_marks_running_jobs_failed(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(job_timeout=30.0, rpc_timeout=20.0)
    with cluster.client() as client:
        client.count("people")
        cluster.signal("a", signal.SIGSTOP)
        try:
            from mpc.proto.v1 import coordinator_pb2

            job_id = client.submit(coordinator_pb2.Query(statistic="count", dataset="people"))
            time.sleep(1.0)
            cluster.signal("coordinator", signal.SIGKILL)
            cluster.processes["coordinator"].wait(5)
        finally:
            cluster.signal("a", signal.SIGCONT)
    cluster.start_coordinator()
    with cluster.client() as client, pytest.raises(JobFailedError, match="restarted"):
        client.result(job_id)
    assert np.isfinite(cluster.client().count("people").value)
