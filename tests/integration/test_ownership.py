"""Job ownership with real processes: a client sees only its own jobs, an admin sees all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import load_pem_x509_certificate

from mpc.client import Client
from mpc.demo.cluster import LocalCluster
from mpc.errors import AccessDeniedError, JobNotFoundError, LimitExceededError
from mpc.identity import Role, issue_certificate
from mpc.proto.v1 import coordinator_pb2
from tests.integration.conftest import ClusterFactory

pytestmark = pytest.mark.integration

UNKNOWN = "job-0123456789abcdef"


def add_identities(tls_dir: Path, names: list[str], role: Role = Role.CLIENT) -> None:
    """Issue certificates for more clients (or admins) with the cluster's own CA."""
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = load_pem_x509_certificate((tls_dir / "ca.pem").read_bytes())
    for name in names:
        key, cert = issue_certificate(ca_key, ca_cert, name, role)
        (tls_dir / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(tls_dir / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)


def client_as(cluster: LocalCluster, name: str, timeout: float = 60.0) -> Client:
    return Client(cluster.coordinator_address, tls_dir=cluster.tls_dir, name=name, timeout=timeout)


def _status(call: object) -> tuple[grpc.StatusCode, str]:
    """The raw gRPC status of a call (a stream is read to its end)."""
    try:
        for _ in call:  # type: ignore[attr-defined]
            pass
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the call succeeded")


def _mpc_jobs(cluster: LocalCluster, *args: str) -> dict[str, list[dict[str, object]]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "jobs",
            "--coordinator",
            cluster.coordinator_address,
            "--tls-dir",
            str(cluster.tls_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: dict[str, list[dict[str, object]]] = json.loads(out.stdout)
    return parsed


def test_clients_see_only_their_own_jobs_and_admins_see_all(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster()
    add_identities(cluster.tls_dir, ["bob"])
    add_identities(cluster.tls_dir, ["root"], Role.ADMIN)
    with cluster.client() as alice, client_as(cluster, "bob") as bob:
        counted = alice.count("people")
        mine = counted.job_id
        bobs = bob.mean("people", ["age"]).job_id

        # Another client's job fails exactly like an unknown id: NOT_FOUND, same text.
        for job_id in (mine, UNKNOWN):
            with pytest.raises(JobNotFoundError) as info:
                bob.result(job_id)
            assert str(info.value) == f"unknown job {job_id!r}"
            with pytest.raises(JobNotFoundError, match=f"^unknown job '{job_id}'$"):
                list(bob.watch(job_id))
        foreign = [
            _status(bob._stub.GetResult(coordinator_pb2.GetResultRequest(job_id=j), timeout=10))
            for j in (mine, UNKNOWN)
        ]
        watched = [
            _status(bob._stub.WatchJob(coordinator_pb2.WatchJobRequest(job_id=j), timeout=10))
            for j in (mine, UNKNOWN)
        ]
        for (code, text), job_id in zip(foreign + watched, [mine, UNKNOWN] * 2, strict=True):
            assert code == grpc.StatusCode.NOT_FOUND
            assert text == f"unknown job {job_id!r}"

        assert [j.job_id for j in alice.jobs()] == [mine]
        assert [(j.job_id, j.statistic, j.submitted_by) for j in bob.jobs()] == [
            (bobs, "mean", "bob")
        ]
        with pytest.raises(AccessDeniedError, match="admin certificate"):
            bob.jobs(all_clients=True)

    with client_as(cluster, "root") as root:
        assert root.result(mine).value == counted.value
        assert list(root.watch(bobs))[-1].state.value == "succeeded"
        assert root.jobs() == []  # its own: none yet
        everyone = root.jobs(all_clients=True)
        assert [(j.job_id, j.submitted_by) for j in everyone] == [(bobs, "bob"), (mine, "client")]

    # The command line: the caller's jobs, or everyone's for an admin.
    listed = _mpc_jobs(cluster, "--json")["jobs"]
    assert [j["job_id"] for j in listed] == [mine]
    job = listed[0]
    assert job["state"] == "succeeded" and job["statistic"] == "count"
    assert job["dataset"] == "people" and job["submitted_by"] == "client"
    assert job["epsilon_spent"] == 0.0 and job["error"] == ""
    assert isinstance(job["finished_at"], float) and job["finished_at"] >= job["created_at"]  # type: ignore[operator]
    everyone_cli = _mpc_jobs(cluster, "--name", "root", "--all", "--limit", "1", "--json")
    assert [j["job_id"] for j in everyone_cli["jobs"]] == [bobs]
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "jobs",
            "--coordinator",
            cluster.coordinator_address,
            "--tls-dir",
            str(cluster.tls_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert mine in text and "succeeded" in text and "people" in text


def test_queued_jobs_per_client_are_limited(make_cluster: ClusterFactory) -> None:
    """Beyond max_queued_per_client (50) a client's submit is refused; others are not held up."""
    cluster = make_cluster(job_timeout=60.0, rpc_timeout=30.0)
    add_identities(cluster.tls_dir, ["bob"])
    query = coordinator_pb2.Query(statistic="count", dataset="people")
    with cluster.client() as alice, client_as(cluster, "bob") as bob:
        alice.count("people")  # channels up
        cluster.signal("a", signal.SIGSTOP)  # every job now waits on party a
        try:
            jobs = [alice.submit(query) for _ in range(50)]
            with pytest.raises(LimitExceededError) as info:
                alice.submit(query)
            assert str(info.value) == (
                "client 'client' has 50 jobs queued or running (max_queued_per_client = 50); "
                "wait for some to finish"
            )
            theirs = bob.submit(query)  # the limit is per client
        finally:
            cluster.signal("a", signal.SIGCONT)
        assert list(bob.watch(theirs))[-1].state.value == "succeeded"
        assert bob.result(theirs).value > 0
        for job_id in jobs:
            assert list(alice.watch(job_id))[-1].state.value == "succeeded"
        # Round-robin across clients: bob's job ran after a few of alice's backlog of 50 (the
        # 4 that held the job slots, and about one more per slot), not after all of them.
        bob_finished = bob.jobs()[0].finished_at
        before = [j for j in alice.jobs(limit=100) if j.finished_at < bob_finished]
        print(f"{len(before)} of alice's 50 queued jobs finished before bob's one job")
        assert len(before) <= 12
        alice.count("people")  # room again
