"""Pairwise-mask additive sharing: key agreement, seed derivation, PRG and masks.

Pure module (no I/O). Security assumptions and choices:

* Each party makes a fresh X25519 key per job and signs it with the long-term key of its
  certificate (:func:`key_offer_payload` is what is signed). The coordinator only relays the
  signed offers; every party verifies every peer's signature and certificate before deriving
  anything, so a relaying coordinator cannot substitute keys (no man in the middle).
* The signed payload contains the digest of the job spec as the signer saw it. A party
  verifying a peer's offer over *its own* digest therefore also checks that the coordinator
  showed both of them the same job.
* Pairwise round seeds come from HKDF-SHA256 over the X25519 secret, with the job-spec digest,
  the round number, the digest of the round's public input (:func:`round_input_digest`) and
  both party ids in ``info``: a seed is never reused across rounds, jobs or pairs, so a share
  replayed from another round or job does not unmask; and a coordinator that sends different
  round inputs (models) to different parties gets masks that do not cancel, so the aggregate
  it sees is uniformly random garbage rather than a difference of two parties' statistics.
* The PRG is AES-256-CTR (``cryptography``): a CSPRNG with hardware acceleration, producing the
  mask in the same streaming order as the share leaves the party. A zero IV is safe because
  every key is used for exactly one stream.
* Party ``i``'s masked share is ``x_i + sum_{j>i} PRG(k_ij) - sum_{j<i} PRG(k_ij)`` mod 2^64,
  ordering parties by their position in the signed participant list. Summed over all parties
  the masks cancel exactly; any set of shares missing at least one party is uniformly random.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpc.errors import ProtocolError
from mpc.ring import RingVector

_DOMAIN_OFFER = b"mpc/v1/ephemeral-key-offer"
_DOMAIN_SEED = b"mpc/v1/pairwise-round-seed"
_DOMAIN_ROUND_INPUT = b"mpc/v1/round-input"
_ZERO_IV = bytes(16)
WORD_BYTES = 8


@dataclass(frozen=True, repr=False)
class EphemeralKey:
    """A party's per-job X25519 key pair. ``repr`` is redacted so it never reaches a log."""

    private: x25519.X25519PrivateKey
    public_bytes: bytes

    @classmethod
    def generate(cls) -> EphemeralKey:
        private = x25519.X25519PrivateKey.generate()  # OS CSPRNG inside
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(private=private, public_bytes=public)

    def __repr__(self) -> str:
        return "EphemeralKey(<redacted>)"

    def exchange(self, peer_public: bytes) -> bytes:
        if len(peer_public) != 32:
            raise ProtocolError("an X25519 public key must be 32 bytes")
        try:
            shared = self.private.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:  # cryptography refuses the all-zero result itself
            shared = bytes(32)
        if shared == bytes(32):
            # A low-order peer point gives the all-zero secret; refuse it (RFC 7748 section 6.1).
            raise ProtocolError("a peer's ephemeral key is a low-order point")
        return shared


def _length_prefixed(*fields: bytes) -> bytes:
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def key_offer_payload(spec_digest: bytes, party_id: str, public_key: bytes) -> bytes:
    """The exact bytes a party signs to vouch for its ephemeral key in one job."""
    return _length_prefixed(_DOMAIN_OFFER, spec_digest, party_id.encode(), public_key)


SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def sign_payload(identity_key: SigningKey, payload: bytes) -> bytes:
    """Sign with the certificate key (ECDSA-SHA256, Ed25519 or RSA-PSS-SHA256)."""
    if isinstance(identity_key, ec.EllipticCurvePrivateKey):
        return identity_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(identity_key, ed25519.Ed25519PrivateKey):
        return identity_key.sign(payload)
    from cryptography.hazmat.primitives.asymmetric import padding

    return identity_key.sign(
        payload,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )


def verify_payload(public_key: object, payload: bytes, signature: bytes) -> bool:
    """Check a signature made by :func:`sign_payload`; False on any failure."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
        elif isinstance(public_key, rsa.RSAPublicKey):
            from cryptography.hazmat.primitives.asymmetric import padding

            public_key.verify(
                signature,
                payload,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
                hashes.SHA256(),
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def round_input_digest(round_input: bytes) -> bytes:
    """SHA-256 of a round's public input as received (empty for a query's single round)."""
    return hashlib.sha256(_length_prefixed(_DOMAIN_ROUND_INPUT, round_input)).digest()


def round_seed(
    shared_secret: bytes,
    spec_digest: bytes,
    round_id: int,
    party_a: str,
    party_b: str,
    input_digest: bytes = b"",
) -> bytes:
    """Derive the 32-byte AES key that pair (a, b) uses for one round of one job.

    The pair is put in a canonical order so both ends derive the same key. ``input_digest``
    (:func:`round_input_digest`) binds what the coordinator sent for this round.
    """
    low, high = sorted((party_a, party_b))
    info = _length_prefixed(
        _DOMAIN_SEED,
        spec_digest,
        round_id.to_bytes(8, "big"),
        input_digest,
        low.encode(),
        high.encode(),
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared_secret)


def spec_digest_of(canonical_bytes: bytes) -> bytes:
    """SHA-256 of a job spec's canonical encoding."""
    return hashlib.sha256(canonical_bytes).digest()


class PairwiseMask:
    """Streams ``sum_{j>i} PRG(k_ij) - sum_{j<i} PRG(k_ij)`` for one party and one round.

    ``seeds`` maps each peer id to the round seed shared with it; ``order`` is the signed
    participant list, which fixes who adds and who subtracts. Chunks must be pulled in order;
    each call continues every AES-CTR stream where the previous call stopped.
    """

    def __init__(self, party_id: str, order: Sequence[str], seeds: Mapping[str, bytes]) -> None:
        if party_id not in order:
            raise ProtocolError("this party is not in the participant list")
        position = {pid: index for index, pid in enumerate(order)}
        missing = set(order) - {party_id} - set(seeds)
        if missing:
            raise ProtocolError(f"no pairwise seed for peers {sorted(missing)}")
        me = position[party_id]
        self._streams = [
            (
                Cipher(algorithms.AES(seeds[peer]), modes.CTR(_ZERO_IV)).encryptor(),
                position[peer] > me,
            )
            for peer in order
            if peer != party_id
        ]
        self._capacity = 0
        self._zeros = b""
        self._scratch = bytearray()

    def __repr__(self) -> str:
        return f"PairwiseMask(<{len(self._streams)} redacted streams>)"

    def next(self, words: int) -> RingVector:
        """The next ``words`` mask words (uint64), as a fresh array."""
        return self.mask(np.zeros(words, dtype=np.uint64))

    def mask(self, values: RingVector, out: RingVector | None = None) -> RingVector:
        """``values`` plus the next ``values.size`` mask words (mod 2^64), into ``out``.

        ``out`` (a fresh array when None; ``values`` itself masks in place) must be a
        contiguous native uint64 array of the same size. Every stream's keystream goes through
        one scratch buffer of this mask (AES-CTR of a shared zero buffer, ``update_into``), so
        a chunk costs no allocation besides ``out``.
        """
        words = values.size
        if out is None:
            out = np.empty(words, dtype=np.uint64)
        if out.size != words:
            raise ValueError("mask output and input sizes differ")
        if words > self._capacity:
            self._capacity = words
            self._zeros = bytes(words * WORD_BYTES)
            # Some cryptography backends want block size - 1 spare bytes in the output buffer.
            self._scratch = bytearray(words * WORD_BYTES + 15)
        zeros = memoryview(self._zeros)[: words * WORD_BYTES]
        keystream = np.frombuffer(self._scratch, dtype="<u8", count=words)
        source = values
        for encryptor, adds in self._streams:
            encryptor.update_into(zeros, self._scratch)
            (np.add if adds else np.subtract)(source, keystream, out=out)
            source = out  # the first stream reads the input, the others add in place
        if source is not out:  # no peers: nothing to mask
            out[...] = values
        return out


#: About 1 MiB of uint64 words per chunk: large enough that per-message overhead vanishes,
#: small enough to stay far below gRPC's 4 MiB default message limit and to keep peak memory
#: per party at a small multiple of the input.
CHUNK_WORDS = 128 * 1024


class ChunkSource(Protocol):
    """A ring vector produced chunk by chunk (e.g. encoded lazily while it is streamed)."""

    @property
    def size(self) -> int: ...

    def chunk(self, start: int, stop: int) -> RingVector: ...


def masked_chunks(
    statistic: RingVector | ChunkSource, mask: PairwiseMask, chunk_words: int = CHUNK_WORDS
) -> Iterator[tuple[int, RingVector]]:
    """Yield ``(offset, masked_chunk)`` pairs covering ``statistic`` in order."""
    if isinstance(statistic, np.ndarray):
        values = np.ascontiguousarray(statistic, dtype=np.uint64)
        size = values.size

        def get(start: int, stop: int) -> RingVector:
            return values[start:stop]
    else:
        size = statistic.size
        get = statistic.chunk
    for offset in range(0, max(1, size), chunk_words):
        chunk = np.asarray(get(offset, min(size, offset + chunk_words)), dtype=np.uint64)
        yield offset, mask.mask(chunk)  # a fresh array per chunk: the consumer may keep it


__all__ = [
    "CHUNK_WORDS",
    "WORD_BYTES",
    "ChunkSource",
    "EphemeralKey",
    "PairwiseMask",
    "SigningKey",
    "key_offer_payload",
    "masked_chunks",
    "round_input_digest",
    "round_seed",
    "sign_payload",
    "spec_digest_of",
    "verify_payload",
]
