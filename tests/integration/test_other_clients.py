"""Clients in other languages: grpc-js over mutual TLS (examples/grpc-js), reflection v1."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2

from mpc.identity import load_identity
from mpc.transport.server import REFLECTION_V1, register_reflection_v1_descriptor
from mpc.transport.tls import secure_channel
from tests.integration.conftest import ClusterFactory

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "grpc-js"
NPM_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def grpc_js(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/grpc-js with its node_modules, installed once (``npm ci``) into pytest's cache
    (``.pytest_cache``, git-ignored) and again only when the lock file changes."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI (the grpc-js example is tested)")
        pytest.skip("node/npm not installed")
    cache = getattr(request.config, "cache", None)
    work = cache.mkdir("grpc-js") if cache is not None else tmp_path_factory.mktemp("grpc-js")
    lock = work / "package-lock.json"
    installed = (work / "node_modules" / "@grpc" / "grpc-js").is_dir()
    if not installed or not lock.exists() or not filecmp.cmp(lock, EXAMPLE / "package-lock.json"):
        for name in ("package.json", "package-lock.json"):
            shutil.copy(EXAMPLE / name, work / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            timeout=NPM_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    shutil.copy(EXAMPLE / "list_parties.js", work / "list_parties.js")
    return work


def _node(work: Path, address: str, certs: Path, *target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(work / "list_parties.js"), address, str(certs), "client", *target],
        cwd=work,
        env=dict(os.environ, MPC_PROTOS=str(ROOT / "protos")),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_grpc_js_lists_parties_over_mutual_tls(make_cluster: ClusterFactory, grpc_js: Path) -> None:
    cluster = make_cluster(n_parties=2)
    port = cluster.coordinator_address.rpartition(":")[2]
    for address, target in (
        (f"127.0.0.1:{port}", ()),  # the IP SAN every server certificate has
        (f"localhost:{port}", ()),
        (f"127.0.0.1:{port}", ("coordinator",)),  # the target-name override
    ):
        done = _node(grpc_js, address, cluster.tls_dir, *target)
        assert done.returncode == 0, done.stderr
        parties = json.loads(done.stdout)["parties"]
        assert [p["party_id"] for p in parties] == cluster.party_ids
        assert all(p["reachable"] for p in parties)
        people = parties[0]["datasets"][0]
        assert people["name"] == "people"
        assert {c["name"] for c in people["columns"]} == {"age", "income", "score"}
    # Hostname verification is on: a name the coordinator's certificate lacks is refused.
    done = _node(grpc_js, f"127.0.0.1:{port}", cluster.tls_dir, "not-the-coordinator")
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr


def _reflection_messages(version: str) -> tuple[type[Message], type[Message]]:
    if version == "v1alpha":
        return reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse
    register_reflection_v1_descriptor()  # as the servers do: grpc/reflection/v1/reflection.proto
    pool = descriptor_pool.Default()
    request, response = (
        GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.{version}.{name}"))
        for name in ("ServerReflectionRequest", "ServerReflectionResponse")
    )
    return request, response


@pytest.fixture
def coordinator_channel(make_cluster: ClusterFactory) -> Iterator[grpc.Channel]:
    cluster = make_cluster(n_parties=2)
    tls = cluster.tls_dir
    identity = load_identity(tls / "ca.pem", tls / "client.pem", tls / "client.key")
    with secure_channel(cluster.coordinator_address, identity, "coordinator") as channel:
        yield channel


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_and_describes_services(
    coordinator_channel: grpc.Channel, version: str
) -> None:
    request_type, response_type = _reflection_messages(version)
    call = coordinator_channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    requests = [
        request_type(list_services=""),
        request_type(file_containing_symbol="mpc.proto.v1.Coordinator"),
        request_type(file_containing_symbol=REFLECTION_V1),
    ]
    listed, coordinator, reflection_v1 = list(call(iter(requests), timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "mpc.proto.v1.Coordinator",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    for response, package, service in (
        (coordinator, "mpc.proto.v1", "Coordinator"),
        (reflection_v1, "grpc.reflection.v1", "ServerReflection"),
    ):
        files = response.file_descriptor_response.file_descriptor_proto
        protos = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in files]
        assert any(p.package == package and service in [s.name for s in p.service] for p in protos)
