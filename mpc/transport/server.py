"""Server plumbing shared by both roles: health, reflection, ready files, graceful stop."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from mpc.errors import TransportError
from mpc.identity import Identity
from mpc.transport.tls import new_server, server_credentials

log = logging.getLogger(__name__)

#: Server reflection under its stable name, asked for first by grpcurl, Postman and grpc-js
#: tools. grpcio-reflection ships only v1alpha; v1 is the same messages under another package,
#: identical on the wire, so one servicer answers both.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def register_reflection_v1_descriptor() -> None:
    """Add ``grpc/reflection/v1/reflection.proto`` to the default pool (v1alpha's file under
    the v1 package), so reflection can also describe the v1 service itself."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return  # already there (registered earlier, or by a newer grpcio-reflection)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _REFLECTION_V1_FILE, "grpc.reflection.v1"
    proto.ClearField("options")
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for message_field in message.field:
            if message_field.HasField("type_name"):
                message_field.type_name = message_field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    try:
        pool.AddSerializedFile(proto.SerializeToString())
    except (TypeError, ValueError) as exc:  # v1 still lists and describes the mpc services
        log.warning("reflection v1 cannot describe itself: %s", exc)


def add_reflection(server: grpc.Server, service_names: list[str]) -> None:
    """Serve reflection v1 and v1alpha for ``service_names`` and the reflection services."""
    register_reflection_v1_descriptor()
    servicer = reflection.ReflectionServicer(
        [*service_names, REFLECTION_V1, reflection.SERVICE_NAME]
    )
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in (reflection.SERVICE_NAME, REFLECTION_V1)
        ]
    )


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
        add_reflection(self.server, [*service_names, health.SERVICE_NAME])
        try:
            port = self.server.add_secure_port(listen, server_credentials(identity))
        except RuntimeError:  # grpcio raises this when it cannot bind
            port = 0
        if port == 0:
            self.server.stop(None)  # release what grpc set up for the server
            raise TransportError(
                f"cannot listen on {listen}: the port is in use or the address is not local"
            )
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
    if not log.isEnabledFor(logging.INFO):  # the default WARNING level: still say it once
        print(f"listening on {running.address}", file=sys.stderr, flush=True)
    if ready_file is not None:
        write_ready_file(ready_file, running.address, running.port)
    stop.wait()
    running.stop()
