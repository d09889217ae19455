"""The coordinator's gRPC link to one party. Every failure names the party."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import grpc
import numpy as np

from mpc.errors import MpcError, PartyFailedError, ProtocolError
from mpc.identity import Identity
from mpc.ledger import BudgetStatus
from mpc.proto.v1 import party_pb2, party_pb2_grpc
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
        # Share streams decode straight to a view of the received bytes (mpc.transport.wire).
        self._contribute = wire.share_stream_callable(
            self._channel, "/mpc.proto.v1.Party/Contribute", party_pb2.ContributeRequest
        )

    def _fail(self, exc: grpc.RpcError) -> PartyFailedError:
        return PartyFailedError(self.party_id, str(from_rpc_error(exc, f"party at {self.address}")))

    def describe(self, timeout: float) -> list[DatasetInfo]:
        try:
            response = self._stub.Describe(party_pb2.DescribeRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise self._fail(exc) from None
        if response.party_id != self.party_id:
            raise PartyFailedError(self.party_id, f"answered as {response.party_id!r}")
        return [convert.dataset_from_proto(d) for d in response.datasets]

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
        """Yield ``(offset, words)`` of the party's masked share, checking every header."""
        request = party_pb2.ContributeRequest(
            job_id=job_id,
            round=round_id,
            round_input=b"" if round_input is None else convert.floats_to_bytes(round_input),
        )
        call = self._contribute(request, timeout=timeout)
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
        self._channel.close()
