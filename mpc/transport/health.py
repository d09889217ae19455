"""``mpc health``: ask a server's gRPC health service, using the server's own config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mpc.config import load_coordinator_config, load_party_config
from mpc.errors import ConfigError
from mpc.transport.tls import secure_channel


def check_health(config_path: Path, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        with config_path.open("rb") as handle:
            is_party = "id" in tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc}") from exc
    if is_party:
        party = load_party_config(config_path)
        listen, tls, name = party.listen, party.tls, party.party_id
    else:
        coordinator = load_coordinator_config(config_path)
        listen, tls, name = coordinator.listen, coordinator.tls, "coordinator"
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 (a wildcard listen is probed locally)
        host = "127.0.0.1"
    identity = tls.load()  # its own certificate: any consortium certificate may ask for health
    with secure_channel(f"{host}:{port}", identity, expected_name=name) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{name} at {host}:{port}: not healthy ({exc.code().name})"
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return serving, f"{name} at {host}:{port}: {status}"
