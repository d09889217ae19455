"""Server plumbing shared by both roles: health, reflection, ready files, graceful stop."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mpc.identity import Identity
from mpc.transport.tls import new_server, server_credentials

log = logging.getLogger(__name__)


class RunningServer:
    """A started gRPC server with health checking and reflection registered."""

    def __init__(
        self,
        listen: str,
        identity: Identity,
        register: Callable[[grpc.Server], None],
        service_names: list[str],
        max_workers: int = 16,
    ) -> None:
        self.server = new_server(max_workers)
        register(self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        port = self.server.add_secure_port(listen, server_credentials(identity))
        if port == 0:
            raise OSError(f"cannot listen on {listen}")
        host = listen.rpartition(":")[0]
        self.address = f"{host}:{port}"
        self.port = port
        self._service_names = service_names

    def start(self) -> None:
        self.server.start()
        for name in ["", *self._service_names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def write_ready_file(path: Path, address: str, port: int) -> None:
    """Atomically write where the server listens, for launchers that asked for port 0."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"address": address, "port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


def serve_until_signalled(running: RunningServer, ready_file: Path | None) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running.start()
    log.info("listening on %s", running.address)
    if ready_file is not None:
        write_ready_file(ready_file, running.address, running.port)
    stop.wait()
    running.stop()
