"""Epoch keys: pairwise secrets agreed once per epoch, so that a query is one call per party.

Pure module (no network, no files). The per-job flow of :mod:`mpc.protocol.secure_sum` costs
three coordinator-party round trips before any share moves (setup, key agreement, round).
Here every party instead holds an **epoch**: an X25519 key pair made in memory, signed once
with its certificate key together with a random epoch id and an expiry
(:func:`epoch_key_payload`), and handed to the coordinator with the party's public schemas.
A query is then one call per party carrying the signed spec and every participant's signed
epoch key; the party answers with its masked share::

    coordinator                           party i
    -----------                           -------
    Describe (cached, once per epoch) -->
                                      <-- schemas + signed epoch key E_i
    Query(spec, E_1..E_n)             --> verify every E_j (certificate from our CA naming
                                          j, signature, not expired); E_i must be one of
                                          its own live epochs; check the spec, charge DP,
                                          compute x_i
                                      <-- y_i = x_i + sum_{j>i} PRG(k_ij) - sum_{j<i} PRG(k_ij)

    s_ij = HKDF(X25519(e_i, E_j); both ids, epoch ids and public keys)   once per epoch pair
    k_ij = HKDF(s_ij; spec digest, round, SHA-256(round input), i, j)    per job and round

Why this is as safe as a fresh key per job:

* **No man in the middle.** Epoch keys are signed with the certificate keys and verified by
  every peer against the CA (revocation and validity rechecked at every use), so the
  coordinator relays keys it cannot substitute. A key relabelled as another party's fails
  the certificate name check; an expired one is refused.
* **A mask is never reused.** A round key ``k_ij`` depends on both epoch keys, the spec
  digest (which contains the job id), the round and the round's public input. Within one of
  its epochs a party answers a job id at most once (:meth:`Epoch.claim`; the set of answered
  ids lives exactly as long as the epoch's private key, and an epoch takes at most
  :data:`MAX_EPOCH_JOBS` jobs). Across epochs, or after a restart (epochs are never written
  down), its key is new, so every pair it belongs to gets new round keys: a replayed job is
  either refused or masked afresh, never answered twice under the same masks. A DP job is
  also charged once per job id in the party's durable ledger, so a restart does not yield a
  second noisy copy.
* **Inconsistent views give garbage.** A coordinator that shows parties different specs,
  round inputs or epoch keys makes them derive different round keys: the masks do not
  cancel and the sum it sees is uniformly random, exactly as with round inputs in the
  per-job flow. It learns nothing, and every party's share stays masked by the pairs with
  honest peers.
* **Forward secrecy per epoch.** Epoch private keys live in memory only, are rotated on a
  schedule (:data:`EPOCH_LIFETIME_SECONDS`) and forgotten when the epoch ends.

Every refusal here is decided from the keys and the clock: public information, never data.
Expiries are compared with each party's own clock, so a deployment keeps its clocks within a
few minutes of each other (a key is handed out with at least :data:`ROTATE_MARGIN_SECONDS`
left, and the coordinator stops using it 5 minutes before it expires).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpc.errors import ProtocolError
from mpc.identity import Identity, Role, revoked_problem, validity_problem, verify_certificate
from mpc.sharing import (
    EphemeralKey,
    PairwiseMask,
    round_input_digest,
    round_seed,
    sign_payload,
    verify_payload,
)

_DOMAIN_EPOCH_KEY = b"mpc/v1/epoch-key"
_DOMAIN_PAIR = b"mpc/v1/epoch-pair-secret"

#: How long an epoch key is valid.
EPOCH_LIFETIME_SECONDS = 3600.0
#: A party hands out a new epoch key when its current one has less than this left; the old
#: epoch still answers the queries that name it until it expires.
ROTATE_MARGIN_SECONDS = 900.0
#: At most this many jobs per epoch (a new epoch is handed out at half of it).
MAX_EPOCH_JOBS = 50_000
#: Verified peer keys remembered per epoch (a cache: overflowing it only costs a re-check).
_PAIR_CACHE = 4096


def _length_prefixed(*fields: bytes) -> bytes:
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def epoch_key_payload(party_id: str, epoch_id: bytes, public_key: bytes, not_after: int) -> bytes:
    """The exact bytes a party signs to vouch for one of its epoch keys."""
    return _length_prefixed(
        _DOMAIN_EPOCH_KEY, party_id.encode(), epoch_id, public_key, not_after.to_bytes(8, "big")
    )


@dataclass(frozen=True)
class SignedEpochKey:
    """A party's public epoch key, signed with its certificate key (all public)."""

    party_id: str
    epoch_id: bytes
    public_key: bytes
    not_after: int  # unix seconds
    signature: bytes
    certificate_pem: bytes

    def payload(self) -> bytes:
        return epoch_key_payload(self.party_id, self.epoch_id, self.public_key, self.not_after)


class Epoch:
    """One of this party's epochs: its private key, the jobs it answered, verified peers."""

    def __init__(self, identity: Identity, lifetime: float, now: float) -> None:
        self.epoch_id = secrets.token_bytes(16)
        self.not_after = int(now + lifetime)
        self._key = EphemeralKey.generate()
        payload = epoch_key_payload(
            identity.name, self.epoch_id, self._key.public_bytes, self.not_after
        )
        self.signed = SignedEpochKey(
            party_id=identity.name,
            epoch_id=self.epoch_id,
            public_key=self._key.public_bytes,
            not_after=self.not_after,
            signature=sign_payload(identity.signing_key(), payload),
            certificate_pem=identity.cert_pem,
        )
        self._answered: set[str] = set()
        # (peer key as signed) -> (peer certificate, pair secret)
        self._pairs: dict[SignedEpochKey, tuple[x509.Certificate, bytes]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Epoch({self.epoch_id.hex()[:8]}, <redacted>)"

    @property
    def jobs(self) -> int:
        with self._lock:
            return len(self._answered)

    def claim(self, job_id: str) -> None:
        """Record that this epoch answers ``job_id``; refuse a second time or a full epoch."""
        with self._lock:
            if job_id in self._answered:
                raise ProtocolError(f"job {job_id} was already answered in this epoch")
            if len(self._answered) >= MAX_EPOCH_JOBS:
                raise ProtocolError(
                    "this party's epoch has answered its maximum number of jobs; the "
                    "coordinator must fetch its new epoch key (Describe)"
                )
            self._answered.add(job_id)

    def pair_secret(
        self, mine: SignedEpochKey, peer: SignedEpochKey, ca: x509.Certificate, now: float
    ) -> bytes:
        """The secret shared with ``peer``'s epoch, verifying its key (cached per epoch)."""
        with self._lock:
            held = self._pairs.get(peer)
        if held is not None:
            cert, secret = held
            problem = validity_problem(cert) or revoked_problem(cert, ca)
            if problem is not None:
                raise ProtocolError(problem)
            _check_expiry(peer, now)
            return secret
        cert = verify_epoch_key(peer, ca, now)
        shared = self._key.exchange(peer.public_key)
        low, high = sorted((mine, peer), key=lambda k: k.party_id)
        info = _length_prefixed(
            _DOMAIN_PAIR,
            *(f for k in (low, high) for f in (k.party_id.encode(), k.epoch_id, k.public_key)),
        )
        secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
        with self._lock:
            if len(self._pairs) >= _PAIR_CACHE:
                self._pairs.clear()
            self._pairs[peer] = (cert, secret)
        return secret

    def close(self) -> None:
        with self._lock:
            self._pairs.clear()


def _check_expiry(key: SignedEpochKey, now: float) -> None:
    if key.not_after <= now:
        raise ProtocolError(f"party {key.party_id!r}: its epoch key has expired")


def verify_epoch_key(
    key: SignedEpochKey, ca: x509.Certificate, now: float | None = None
) -> x509.Certificate:
    """Check a peer's epoch key: certificate from our CA naming it, signature, not expired."""
    try:
        cert = x509.load_pem_x509_certificate(key.certificate_pem)
    except ValueError:
        raise ProtocolError(f"party {key.party_id!r} sent an unreadable certificate") from None
    verify_certificate(cert, ca, expected_name=key.party_id, expected_role=Role.PARTY)
    if not verify_payload(cert.public_key(), key.payload(), key.signature):
        raise ProtocolError(f"party {key.party_id!r}: epoch key signature does not verify")
    _check_expiry(key, time.time() if now is None else now)
    return cert


@dataclass(frozen=True)
class EpochJob:
    """One job's view of the epochs: this party's epoch and a secret per peer."""

    party_id: str
    order: tuple[str, ...]
    epoch: Epoch
    spec_digest: bytes
    _secrets: dict[str, bytes]

    def __repr__(self) -> str:
        return f"EpochJob(party={self.party_id!r}, <redacted>)"

    def round_mask(self, round_id: int, round_input: bytes = b"") -> PairwiseMask:
        bound = round_input_digest(round_input)
        seeds = {
            peer: round_seed(secret, self.spec_digest, round_id, self.party_id, peer, bound)
            for peer, secret in self._secrets.items()
        }
        return PairwiseMask(self.party_id, self.order, seeds)


class EpochKeys:
    """This party's live epochs: the current one and the one before it (until it expires)."""

    def __init__(
        self,
        identity: Identity,
        *,
        lifetime: float = EPOCH_LIFETIME_SECONDS,
        margin: float = ROTATE_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._identity = identity
        self._lifetime = lifetime
        self._margin = min(margin, lifetime / 2)
        self._clock = clock
        self._lock = threading.Lock()
        self._current = Epoch(identity, lifetime, clock())
        self._previous: Epoch | None = None

    def current(self) -> SignedEpochKey:
        """The signed key to hand out now, rotating first when the epoch is nearly used up."""
        with self._lock:
            now = self._clock()
            epoch = self._current
            if epoch.not_after - now < self._margin or epoch.jobs >= MAX_EPOCH_JOBS // 2:
                self._rotate_locked(now)
            return self._current.signed

    def rotate(self) -> None:
        with self._lock:
            self._rotate_locked(self._clock())

    def _rotate_locked(self, now: float) -> None:
        if self._previous is not None:
            self._previous.close()
        self._previous = self._current
        self._current = Epoch(self._identity, self._lifetime, now)

    def _own(self, key: SignedEpochKey) -> Epoch:
        now = self._clock()
        with self._lock:
            for epoch in (self._current, self._previous):
                if epoch is not None and epoch.signed == key:
                    if epoch.not_after <= now:
                        break
                    return epoch
        raise ProtocolError(
            f"the job names an epoch key of party {key.party_id!r} that it does not hold (it "
            "expired, or the party restarted): the coordinator must fetch its current key"
        )

    def prepare(
        self, order: Sequence[str], spec_digest: bytes, keys: Sequence[SignedEpochKey]
    ) -> EpochJob:
        """Verify the epoch keys relayed for one job (one per participant, in ``order``)."""
        me = self._identity.name
        if me not in order:
            raise ProtocolError(f"party {me!r} is not a participant of this job")
        if [k.party_id for k in keys] != list(order):
            raise ProtocolError("the job's epoch keys do not match its participant list")
        by_party = {k.party_id: k for k in keys}
        mine = by_party[me]
        epoch = self._own(mine)
        ca = self._identity.ca_certificate
        now = self._clock()
        pair = {
            pid: epoch.pair_secret(mine, k, ca, now) for pid, k in by_party.items() if pid != me
        }
        return EpochJob(me, tuple(order), epoch, spec_digest, pair)


__all__ = [
    "EPOCH_LIFETIME_SECONDS",
    "MAX_EPOCH_JOBS",
    "ROTATE_MARGIN_SECONDS",
    "Epoch",
    "EpochJob",
    "EpochKeys",
    "SignedEpochKey",
    "epoch_key_payload",
    "verify_epoch_key",
]
