"""The secure sum, read top to bottom: party session and coordinator-side aggregator.

Pure module: no network, no files. A query is one call per party with keys agreed once per
epoch (:mod:`mpc.protocol.epochs`, the same masks and the same aggregator); a training job,
which runs in rounds, uses a fresh key per job and these stages::

    coordinator                                  party i
    -----------                                  -------
    Setup(spec)                      ----->      PartySession(spec): check spec, new X25519 key
                                     <-----      signed offer (spec digest, id, public key)
    AgreeKeys(all signed offers)     ----->      verify every certificate and signature,
                                                 derive one secret per peer      [AGREED]
    Contribute(round r, input u_r)   ----->      y_i = x_i + sum_{j>i} PRG(k_ij^r)
                                     <-----                 - sum_{j<i} PRG(k_ij^r)
                                                 k_ij^r = HKDF(secret_ij; spec digest, r,
                                                               SHA-256(u_r), i, j)
    ShareAggregator: sum of all y_i = sum of all x_i (masks cancel); reveal only when every
    participant's share arrived complete.

Each party refuses messages that do not belong to its current stage and never contributes
twice to the same round (a second share under the same masks would reveal the difference of
its inputs).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from cryptography import x509

from mpc.errors import ProtocolError
from mpc.identity import Identity, Role, verify_certificate
from mpc.protocol.spec import JobSpec
from mpc.ring import RingVector
from mpc.sharing import (
    EphemeralKey,
    PairwiseMask,
    key_offer_payload,
    round_input_digest,
    round_seed,
    sign_payload,
    verify_payload,
)


@dataclass(frozen=True)
class SignedKeyOffer:
    """A party's ephemeral public key for one job, signed with its certificate key."""

    party_id: str
    public_key: bytes
    signature: bytes
    certificate_pem: bytes


class PartyStage(StrEnum):
    OFFERED = "offered"
    AGREED = "agreed"
    CLOSED = "closed"


class PartySession:
    """One party's view of one job: key offer, key agreement, masked shares per round."""

    def __init__(self, spec: JobSpec, identity: Identity) -> None:
        if identity.name not in spec.party_ids:
            raise ProtocolError(f"party {identity.name!r} is not a participant of this job")
        self.spec = spec
        self.party_id = identity.name
        self._identity = identity
        self._ca = identity.ca_certificate
        self._digest = spec.digest()
        self._ephemeral = EphemeralKey.generate()
        self._secrets: dict[str, bytes] = {}
        self._rounds_used: set[int] = set()
        self._lock = threading.Lock()
        self.stage = PartyStage.OFFERED

    def __repr__(self) -> str:
        return f"PartySession(job={self.spec.job_id!r}, party={self.party_id!r}, {self.stage})"

    def offer(self) -> SignedKeyOffer:
        payload = key_offer_payload(self._digest, self.party_id, self._ephemeral.public_bytes)
        return SignedKeyOffer(
            party_id=self.party_id,
            public_key=self._ephemeral.public_bytes,
            signature=sign_payload(self._identity.signing_key(), payload),
            certificate_pem=self._identity.cert_pem,
        )

    def agree(self, offers: Sequence[SignedKeyOffer]) -> None:
        """Verify every participant's offer and derive the pairwise secrets."""
        with self._lock:
            if self.stage is not PartyStage.OFFERED:
                raise ProtocolError(f"key agreement is not allowed in stage {self.stage}")
            by_party = {offer.party_id: offer for offer in offers}
            if len(by_party) != len(offers) or set(by_party) != set(self.spec.party_ids):
                raise ProtocolError("key offers do not match the job's participant list")
            mine = by_party[self.party_id]
            if mine.public_key != self._ephemeral.public_bytes:
                raise ProtocolError("the relayed offer for this party is not its own key")
            secrets: dict[str, bytes] = {}
            for peer_id, offer in by_party.items():
                if peer_id == self.party_id:
                    continue
                verify_offer(offer, self._digest, self._ca)
                secrets[peer_id] = self._ephemeral.exchange(offer.public_key)
            self._secrets = secrets
            self.stage = PartyStage.AGREED

    def require_agreed(self) -> None:
        """Refuse contributions before key agreement (or after close)."""
        with self._lock:
            if self.stage is not PartyStage.AGREED:
                raise ProtocolError(f"contributing is not allowed in stage {self.stage}")

    def round_mask(self, round_id: int, round_input: bytes = b"") -> PairwiseMask:
        """The mask stream for ``round_id``; each round can be used exactly once.

        Round ids must increase: a round at or below one already contributed is refused, so
        no round can be answered twice (a second share under the same masks would reveal the
        difference of the two inputs). ``round_input`` is the round's public input exactly as
        received; its digest is bound into every pairwise seed.
        """
        with self._lock:
            if self.stage is not PartyStage.AGREED:
                raise ProtocolError(f"contributing is not allowed in stage {self.stage}")
            if round_id < 0 or (self._rounds_used and round_id <= max(self._rounds_used)):
                raise ProtocolError(f"round {round_id} was already contributed or is invalid")
            self._rounds_used.add(round_id)
            bound_input = round_input_digest(round_input)
            seeds = {
                peer: round_seed(secret, self._digest, round_id, self.party_id, peer, bound_input)
                for peer, secret in self._secrets.items()
            }
        return PairwiseMask(self.party_id, self.spec.party_ids, seeds)

    def close(self) -> None:
        with self._lock:
            self._secrets = {}
            self.stage = PartyStage.CLOSED


def verify_offer(offer: SignedKeyOffer, spec_digest: bytes, ca: x509.Certificate) -> None:
    """Check a peer's offer: certificate from our CA naming the claimed id, valid signature."""
    try:
        cert = x509.load_pem_x509_certificate(offer.certificate_pem)
    except ValueError as exc:
        raise ProtocolError(f"party {offer.party_id!r} sent an unreadable certificate") from exc
    verify_certificate(cert, ca, expected_name=offer.party_id, expected_role=Role.PARTY)
    payload = key_offer_payload(spec_digest, offer.party_id, offer.public_key)
    if not verify_payload(cert.public_key(), payload, offer.signature):
        raise ProtocolError(
            f"party {offer.party_id!r}: key offer signature does not verify for this job spec "
            "(a relayed key was altered, or parties were shown different jobs)"
        )


class ShareAggregator:
    """Adds masked shares chunk by chunk; reveals only when every share arrived complete."""

    def __init__(self, participants: Sequence[str], length: int) -> None:
        if length < 0:
            raise ProtocolError("vector length must be non-negative")
        self.length = length
        self._received = dict.fromkeys(participants, 0)
        self._total = np.zeros(length, dtype=np.uint64)
        self._lock = threading.Lock()

    def add(self, party_id: str, offset: int, chunk: RingVector) -> None:
        """Add one chunk; chunks of one party must arrive in order without gaps or overlap."""
        with self._lock:
            if party_id not in self._received:
                raise ProtocolError(f"party {party_id!r} is not a participant of this round")
            expected = self._received[party_id]
            if offset != expected:
                raise ProtocolError(
                    f"party {party_id!r}: share chunk at offset {offset}, expected {expected}"
                )
            if expected + chunk.size > self.length:
                raise ProtocolError(
                    f"party {party_id!r}: share is longer than the expected {self.length} words"
                )
            np.add(
                self._total[offset : offset + chunk.size],
                chunk,
                out=self._total[offset : offset + chunk.size],
            )
            self._received[party_id] = expected + chunk.size

    def check_complete(self, party_id: str) -> None:
        with self._lock:
            got = self._received.get(party_id)
        if got != self.length:
            raise ProtocolError(
                f"party {party_id!r}: share has {got} words, expected {self.length}"
            )

    def reveal(self) -> RingVector:
        """The sum of all shares: the aggregate. Refuses while any share is incomplete."""
        with self._lock:
            short = sorted(pid for pid, got in self._received.items() if got != self.length)
            if short:
                raise ProtocolError(f"cannot reveal: shares incomplete from {short}")
            return self._total.copy()


__all__ = [
    "PartySession",
    "PartyStage",
    "ShareAggregator",
    "SignedKeyOffer",
    "verify_offer",
]
