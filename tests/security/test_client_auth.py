"""Client-signed queries and each party's access list, attacked with real processes.

A fake coordinator (the coordinator's certificate, driving the party RPCs) strips, forges,
ages, alters and replays a client's signed query; clients with valid certificates ask for
data their names are not allowed to see. Every party must refuse on its own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mpc.client import Client
from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import MpcError
from mpc.identity import init_certificates, load_identity
from mpc.protocol.query import Query, sign_query
from mpc.protocol.spec import ClientAuth, ColumnBound, JobSpec, Participant, Statistic
from mpc.transport.party_client import GrpcPartyLink
from tests.integration.conftest import BOUNDS, party_table, write_party_csv

PARTIES = ("a", "b", "c")
CLIENTS = ("client", "alice", "bob", "mallory")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("client-auth")
    (workdir / "data").mkdir()
    init_certificates(workdir / "certs", list(PARTIES), clients=CLIENTS)
    access = {
        "alice": {"statistics": ["sum", "count", "mean"], "exact": True},
        "bob": {"statistics": ["mean"], "exact": False, "budget": (1.0, 1e-6)},
    }
    datasets = {}
    for index, pid in enumerate(PARTIES):
        path = workdir / "data" / f"{pid}.csv"
        write_party_csv(path, party_table(index, 30 + index))
        datasets[pid] = {
            "people": DatasetFile(path, max_rows=1000, bounds=BOUNDS),
            "restricted": DatasetFile(path, max_rows=1000, bounds=BOUNDS, access=access),
        }
    with LocalCluster(workdir, datasets, job_timeout=30.0, log_level="DEBUG") as running:
        yield running


def _client(cluster: LocalCluster, name: str) -> Client:
    return Client(cluster.coordinator_address, cluster.tls_dir, name=name, timeout=60.0)


def _links(cluster: LocalCluster) -> dict[str, GrpcPartyLink]:
    tls = cluster.tls_dir
    coordinator = load_identity(tls / "ca.pem", tls / "coordinator.pem", tls / "coordinator.key")
    return {pid: GrpcPartyLink(pid, cluster.addresses[pid], coordinator) for pid in PARTIES}


def _signed_spec(cluster: LocalCluster, job_id: str, **query_kw: object) -> JobSpec:
    bound = ColumnBound("age", *BOUNDS["age"])
    query = Query(Statistic.SUM, "people", ("age",), (bound,), frac_bits=16, **query_kw)  # type: ignore[arg-type]
    tls = cluster.tls_dir
    client = load_identity(tls / "ca.pem", tls / "client.pem", tls / "client.key")
    return JobSpec(
        job_id,
        Statistic.SUM,
        "people",
        (bound,),
        16,
        tuple(Participant(pid, 1000) for pid in PARTIES),
        client=sign_query(client, query),
    )


def _setup_everywhere(links: dict[str, GrpcPartyLink], spec: JobSpec) -> dict[str, str]:
    """Setup at every party: the refusal text per party ("" where it was accepted)."""
    outcome = {}
    for pid, link in links.items():
        try:
            link.setup(spec, 10.0)
            outcome[pid] = ""
        except MpcError as exc:
            outcome[pid] = str(exc)
        link.abort(spec.job_id, "test", 5.0)
    return outcome


def test_unsigned_forged_altered_and_stale_queries_are_refused(cluster: LocalCluster) -> None:
    links = _links(cluster)
    honest = _signed_spec(cluster, "honest")
    assert _setup_everywhere(links, honest) == dict.fromkeys(PARTIES, "")
    assert honest.client is not None
    forged_signature = bytes([honest.client.signature[0] ^ 1]) + honest.client.signature[1:]
    attacks = {
        "no signed query": dataclasses.replace(honest, job_id="unsigned", client=None),
        "does not verify": dataclasses.replace(
            honest,
            job_id="forged",
            client=dataclasses.replace(honest.client, signature=forged_signature),
        ),
        "does not match the client's signed query (bounds": dataclasses.replace(
            _signed_spec(cluster, "widened"), columns=(ColumnBound("age", 0.0, 1e9),)
        ),
        "does not match the client's signed query (parties": dataclasses.replace(
            _signed_spec(cluster, "subset", parties=("a", "b", "c", "d")),
        ),
        "stale": _stale(cluster),
    }
    for expected, spec in attacks.items():
        refusals = _setup_everywhere(links, spec)
        for pid, text in refusals.items():
            assert expected in text, (pid, text)
    for link in links.values():
        link.close()


def _stale(cluster: LocalCluster) -> JobSpec:
    spec = _signed_spec(cluster, "stale")
    tls = cluster.tls_dir
    client = load_identity(tls / "ca.pem", tls / "client.pem", tls / "client.key")
    query = Query(
        Statistic.SUM, "people", ("age",), (ColumnBound("age", *BOUNDS["age"]),), frac_bits=16
    )
    old: ClientAuth = sign_query(client, query, now=time.time() - 3600)
    return dataclasses.replace(spec, client=old)


def test_a_signed_query_is_answered_once(cluster: LocalCluster) -> None:
    links = _links(cluster)
    first = _signed_spec(cluster, "replay-1")
    assert _setup_everywhere(links, first) == dict.fromkeys(PARTIES, "")
    replayed = dataclasses.replace(first, job_id="replay-2")
    for pid, text in _setup_everywhere(links, replayed).items():
        assert "already used (a replay)" in text, (pid, text)
    for link in links.values():
        link.close()


def test_a_replay_is_refused_after_a_party_restart(cluster: LocalCluster) -> None:
    """The party's state database remembers signed queries for their freshness window."""
    links = _links(cluster)
    first = _signed_spec(cluster, "restart-1")
    assert _setup_everywhere(links, first) == dict.fromkeys(PARTIES, "")
    for link in links.values():
        link.close()
    cluster.stop_process("a")
    cluster.start_party("a")
    cluster.addresses["a"] = cluster._wait_ready("a")
    links = _links(cluster)
    replayed = dataclasses.replace(first, job_id="restart-2")
    for pid, text in _setup_everywhere(links, replayed).items():
        assert "already used (a replay)" in text, (pid, text)
    for link in links.values():
        link.close()


def test_the_access_list_decides_who_may_ask_what(cluster: LocalCluster) -> None:
    with _client(cluster, "mallory") as mallory:
        with pytest.raises(MpcError, match="client 'mallory' may not query dataset 'restricted'"):
            mallory.sum("restricted", ["age"])
        assert mallory.count("people").value > 0  # an open dataset
    with _client(cluster, "alice") as alice:
        assert alice.sum("restricted", ["age"]).value > 0  # listed, exact allowed
        with pytest.raises(MpcError, match="may not run variance on dataset 'restricted'"):
            alice.query("variance", "restricted", ["age"])  # type: ignore[arg-type]
    with _client(cluster, "bob") as bob:
        with pytest.raises(MpcError, match="may not run sum"):
            bob.sum("restricted", ["age"])
        with pytest.raises(MpcError, match="only differentially private results"):
            bob.mean("restricted", ["age"])
        noisy = bob.mean("restricted", ["age"], epsilon=0.8, delta=1e-6)
        assert np.isfinite(noisy.value)
        # Bob's own budget (epsilon 1 on this dataset) cannot cover a second such release.
        with pytest.raises(MpcError, match="restricted@client:bob"):
            bob.mean("restricted", ["age"], epsilon=0.8, delta=1e-6)


def test_the_coordinator_refuses_a_query_signed_by_someone_else(cluster: LocalCluster) -> None:
    tls = cluster.tls_dir
    with _client(cluster, "bob") as bob:
        bob._identity = load_identity(tls / "ca.pem", tls / "alice.pem", tls / "alice.key")
        with pytest.raises(MpcError, match="signed by 'alice' but submitted by 'bob'"):
            bob.sum("people", ["age"])


def test_logs_name_clients_but_hold_no_signature(cluster: LocalCluster) -> None:
    for log in Path(cluster.log_dir).glob("*.log"):
        text = log.read_text(errors="replace")
        assert "PRIVATE KEY" not in text
