"""The coordinator's gRPC link to one party. Every failure names the party."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import numpy as np

from mpc.budget_status import BudgetStatus
from mpc.coordinator.party_cache import PartyView
from mpc.errors import MpcError, PartyFailedError, ProtocolError
from mpc.identity import Identity
from mpc.proto.v1 import party_pb2, party_pb2_grpc
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.secure_sum import SignedKeyOffer
from mpc.protocol.spec import JobSpec
from mpc.ring import RingVector
from mpc.transport import convert, wire
from mpc.transport.errors import from_rpc_error
from mpc.transport.tls import secure_channel


class GrpcPartyLink:
    """Calls one party over mutual TLS, checking its certificate names ``party_id``."""

    def __init__(self, party_id: str, address: str, identity: Identity) -> None:
        self.party_id = party_id
        self.address = address
        self._channel = secure_channel(address, identity, expected_name=party_id)
        self._stub = party_pb2_grpc.PartyStub(self._channel)
        # Bumped whenever an established connection is lost (the party may have restarted,
        # losing its epoch): what the coordinator holds from before is then asked for again.
        self.generation = 0
        self._ready = False
        self._channel.subscribe(self._on_connectivity, try_to_connect=False)
        # Share streams decode straight to a view of the received bytes (mpc.transport.wire).
        self._contribute = wire.share_stream_callable(
            self._channel, "/mpc.proto.v1.Party/Contribute", party_pb2.ContributeRequest
        )
        self._query = wire.share_stream_callable(
            self._channel, "/mpc.proto.v1.Party/Query", party_pb2.QueryRequest
        )

    def _on_connectivity(self, state: grpc.ChannelConnectivity) -> None:
        ready = state is grpc.ChannelConnectivity.READY
        if self._ready and not ready:  # a connection was lost
            self.generation += 1
        self._ready = ready

    def _fail(self, exc: grpc.RpcError) -> PartyFailedError:
        return PartyFailedError(self.party_id, str(from_rpc_error(exc, f"party at {self.address}")))

    def describe(self, timeout: float) -> list[DatasetInfo]:
        return self.view(timeout).schemas

    def view(self, timeout: float) -> PartyView:
        """The party's schemas and current signed epoch key (one Describe call)."""
        generation = self.generation  # read first: a reconnect during the call invalidates
        try:
            response = self._stub.Describe(party_pb2.DescribeRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        if response.party_id != self.party_id:
            raise PartyFailedError(self.party_id, f"answered as {response.party_id!r}")
        key = None
        if response.HasField("epoch_key"):
            key = convert.epoch_key_from_proto(response.epoch_key)
            if key.party_id != self.party_id:
                raise PartyFailedError(self.party_id, f"offered an epoch key as {key.party_id!r}")
        schemas = [convert.dataset_from_proto(d) for d in response.datasets]
        return PartyView(schemas, key, generation)

    def query(
        self, spec: JobSpec, keys: Sequence[SignedEpochKey], length: int, timeout: float
    ) -> Iterator[tuple[int, RingVector]]:
        """A whole query in one call: yield the party's masked share as ``(offset, words)``."""
        request = party_pb2.QueryRequest(
            spec=convert.spec_to_proto(spec), keys=[convert.epoch_key_to_proto(k) for k in keys]
        )
        return self._share_stream(self._query(request, timeout=timeout), spec.job_id, 0, length)

    def setup(self, spec: JobSpec, timeout: float) -> SignedKeyOffer:
        try:
            response = self._stub.Setup(
                party_pb2.SetupRequest(spec=convert.spec_to_proto(spec)), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        offer = convert.offer_from_proto(response.key)
        if offer.party_id != self.party_id:
            raise PartyFailedError(self.party_id, f"offered a key as {offer.party_id!r}")
        return offer

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer], timeout: float) -> None:
        request = party_pb2.AgreeKeysRequest(
            job_id=job_id, keys=[convert.offer_to_proto(o) for o in offers]
        )
        try:
            self._stub.AgreeKeys(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None

    def contribute(
        self,
        job_id: str,
        round_id: int,
        length: int,
        timeout: float,
        round_input: np.ndarray | None = None,
    ) -> Iterator[tuple[int, RingVector]]:
        """Yield ``(offset, words)`` of the party's masked share for one round."""
        request = party_pb2.ContributeRequest(
            job_id=job_id,
            round=round_id,
            round_input=b"" if round_input is None else convert.floats_to_bytes(round_input),
        )
        return self._share_stream(
            self._contribute(request, timeout=timeout), job_id, round_id, length
        )

    def _share_stream(
        self, call: Any, job_id: str, round_id: int, length: int
    ) -> Iterator[tuple[int, RingVector]]:
        """Yield ``(offset, words)`` from a stream of share chunks, checking every header."""
        try:
            for message in call:
                if (
                    message.job_id != job_id
                    or message.round != round_id
                    or message.party_id != self.party_id
                ):
                    raise ProtocolError("share chunk is bound to another job, round or party")
                if message.total_length != length:
                    raise ProtocolError(
                        f"share has {message.total_length} words, expected {length}"
                    )
                yield message.offset, message.words
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        except MpcError as exc:
            call.cancel()
            raise PartyFailedError(self.party_id, str(exc)) from None

    def abort(self, job_id: str, reason: str, timeout: float) -> None:
        # Best effort: sessions also expire on the party.
        with contextlib.suppress(grpc.RpcError):
            self._stub.Abort(party_pb2.AbortRequest(job_id=job_id, reason=reason), timeout=timeout)

    def ledger(self, timeout: float) -> list[BudgetStatus]:
        try:
            response = self._stub.GetLedger(party_pb2.GetLedgerRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        return [convert.budget_from_proto(b) for b in response.budgets]

    def close(self) -> None:
        self._channel.unsubscribe(self._on_connectivity)
        self._channel.close()
