"""The Party gRPC servicer: checks the caller is the coordinator, converts, delegates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc

from mpc.config import PartyConfig
from mpc.errors import AccessDeniedError, ProtocolError
from mpc.identity import Role, watch_revocations
from mpc.party.runtime import PartyRuntime
from mpc.proto.v1 import party_pb2, party_pb2_grpc
from mpc.transport import convert, wire
from mpc.transport.errors import handle_errors, handle_stream_errors
from mpc.transport.server import RunningServer, serve_until_signalled
from mpc.transport.tls import require_role

log = logging.getLogger(__name__)

SERVICE_NAME = party_pb2.DESCRIPTOR.services_by_name["Party"].full_name
#: Methods streaming ShareChunk: they yield wire.encode_share_chunk bytes, sent unserialized.
SHARE_STREAMS = ("Contribute", "Query")


class PartyServicer(party_pb2_grpc.PartyServicer):  # type: ignore[misc]
    def __init__(self, runtime: PartyRuntime) -> None:
        self.runtime = runtime

    def _require_coordinator(self, context: grpc.ServicerContext) -> None:
        """Only the coordinator named in this party's config, not any coordinator-role
        certificate the CA issued, may call a party."""
        peer = require_role(context, Role.COORDINATOR)
        expected = self.runtime.config.coordinator
        if peer.name != expected:
            raise AccessDeniedError(
                f"{peer.name!r} is not this party's coordinator (its config names {expected!r})"
            )

    @handle_errors
    def Describe(
        self, request: party_pb2.DescribeRequest, context: grpc.ServicerContext
    ) -> party_pb2.DescribeResponse:
        self._require_coordinator(context)
        return party_pb2.DescribeResponse(
            party_id=self.runtime.party_id,
            datasets=[convert.dataset_to_proto(d) for d in self.runtime.describe()],
            epoch_key=convert.epoch_key_to_proto(self.runtime.epoch_key()),
        )

    @handle_stream_errors
    def Query(
        self, request: party_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        self._require_coordinator(context)
        spec = convert.spec_from_proto(request.spec)
        keys = [convert.epoch_key_from_proto(k) for k in request.keys]
        length, chunks = self.runtime.query(spec, keys)
        yield from wire.encoded_share_chunks(spec.job_id, 0, self.runtime.party_id, length, chunks)

    @handle_errors
    def Setup(
        self, request: party_pb2.SetupRequest, context: grpc.ServicerContext
    ) -> party_pb2.SetupResponse:
        self._require_coordinator(context)
        offer = self.runtime.setup(convert.spec_from_proto(request.spec))
        return party_pb2.SetupResponse(key=convert.offer_to_proto(offer))

    @handle_errors
    def AgreeKeys(
        self, request: party_pb2.AgreeKeysRequest, context: grpc.ServicerContext
    ) -> party_pb2.AgreeKeysResponse:
        self._require_coordinator(context)
        offers = [convert.offer_from_proto(k) for k in request.keys]
        self.runtime.agree(request.job_id, offers)
        return party_pb2.AgreeKeysResponse()

    @handle_stream_errors
    def Contribute(
        self, request: party_pb2.ContributeRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        self._require_coordinator(context)
        round_input = (
            convert.floats_from_bytes(request.round_input) if request.round_input else None
        )
        length, chunks = self.runtime.contribute(request.job_id, request.round, round_input)
        yield from wire.encoded_share_chunks(
            request.job_id, request.round, self.runtime.party_id, length, chunks
        )

    @handle_errors
    def Abort(
        self, request: party_pb2.AbortRequest, context: grpc.ServicerContext
    ) -> party_pb2.AbortResponse:
        self._require_coordinator(context)
        self.runtime.abort(request.job_id)
        return party_pb2.AbortResponse()

    @handle_errors
    def GetLedger(
        self, request: party_pb2.GetLedgerRequest, context: grpc.ServicerContext
    ) -> party_pb2.GetLedgerResponse:
        self._require_coordinator(context)
        return party_pb2.GetLedgerResponse(
            budgets=[convert.budget_to_proto(s) for s in self.runtime.ledger_status()]
        )


def build_party_server(config: PartyConfig) -> tuple[RunningServer, PartyRuntime]:
    identity = config.tls.load()
    watch_revocations(identity.ca_certificate, config.tls.crl_path)  # revoked peers refused
    if identity.role != Role.PARTY.value:
        raise ProtocolError(f"{config.tls.cert} is a {identity.role!r} certificate, not a party's")
    runtime = PartyRuntime(config, identity)
    servicer = PartyServicer(runtime)
    running = RunningServer(
        config.listen,
        identity,
        lambda server: wire.add_servicer_with_share_streams(
            party_pb2_grpc.add_PartyServicer_to_server, servicer, server, SHARE_STREAMS
        ),
        [SERVICE_NAME],
    )
    return running, runtime


def serve_party(config: PartyConfig, ready_file: Path | None = None) -> None:
    running, _ = build_party_server(config)
    log.info("party %r serving %d dataset(s)", config.party_id, len(config.datasets))
    serve_until_signalled(running, ready_file)
