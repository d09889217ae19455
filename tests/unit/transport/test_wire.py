"""mpc.transport.wire: byte-identical to protobuf's ShareChunk, zero-copy decode, strict."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from mpc.errors import ProtocolError
from mpc.proto.v1 import common_pb2, party_pb2
from mpc.transport import wire

_MAX64 = 2**64 - 1
JOB_IDS = ["", "j", "job-" + "x" * 200, "jöb-ü✓"]
ROUNDS = [0, 1, 127, 128, 2**32 - 1]
LENGTHS = [0, 1, 300, 2**35, _MAX64]
OFFSETS = [0, 1, 128, 131_072, 2**40 + 3, _MAX64]
SIZES = [0, 1, 2, 16, 17, 131_072]


def _reference(
    job_id: str, round_id: int, party_id: str, total: int, offset: int, words: np.ndarray
) -> bytes:
    return party_pb2.ShareChunk(
        job_id=job_id,
        round=round_id,
        party_id=party_id,
        total_length=total,
        chunk=common_pb2.VectorChunk(offset=offset, data=words.astype("<u8").tobytes()),
    ).SerializeToString()


def _words(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size, dtype=np.uint64)


@pytest.mark.parametrize("size", SIZES)
def test_encode_equals_protobuf_and_decode_round_trips(size: int) -> None:
    words = _words(size, size)
    cases = list(itertools.product(JOB_IDS, ROUNDS, ["", "party-0", "p" * 130], LENGTHS, OFFSETS))
    if size > 1000:  # one ~1 MiB chunk: a sample of the header values is enough
        cases = cases[::97]
    for job_id, round_id, party_id, total, offset in cases:
        encoded = wire.encode_share_chunk(job_id, round_id, party_id, total, offset, words)
        assert encoded == _reference(job_id, round_id, party_id, total, offset, words)
        view = wire.decode_share_chunk(encoded)
        assert (view.job_id, view.round, view.party_id, view.total_length, view.offset) == (
            job_id,
            round_id,
            party_id,
            total,
            offset,
        )
        np.testing.assert_array_equal(view.words, words)


def test_decode_is_a_view_of_the_received_bytes() -> None:
    data = wire.encode_share_chunk("j", 1, "p", 4, 0, np.arange(4, dtype=np.uint64))
    view = wire.decode_share_chunk(data)
    assert not view.words.flags.writeable
    assert view.words.base is not None  # no copy: backed by ``data``
    assert "words" not in repr(view) and "3" not in repr(view).split("offset")[1]


def test_encode_takes_any_integer_words_as_uint64() -> None:
    words = np.array([1, 2, 3], dtype=np.int64)
    assert wire.encode_share_chunk("j", 0, "p", 3, 0, words) == _reference(
        "j", 0, "p", 3, 0, words.astype(np.uint64)
    )
    strided = _words(10)[::2]
    assert (
        wire.decode_share_chunk(wire.encode_share_chunk("j", 0, "p", 5, 0, strided)).words.tolist()
        == strided.tolist()
    )


def test_encode_refuses_out_of_range_header_values() -> None:
    for args in [(2**32, 0, 0), (0, 2**64, 0), (0, 0, -1), (-1, 0, 0)]:
        round_id, total, offset = args
        with pytest.raises(ProtocolError):
            wire.encode_share_chunk("j", round_id, "p", total, offset, _words(1))


def test_decode_follows_protobuf_for_unusual_but_valid_encodings() -> None:
    """Unknown fields of every wire type, repeated fields, merged sub-messages, big varints."""
    rng = random.Random(7)
    unknown = [
        b"\x30\x05",  # field 6 varint
        b"\x39" + bytes(8),  # field 7 fixed64
        b"\x42\x03abc",  # field 8 length-delimited
        b"\x4d" + bytes(4),  # field 9 fixed32
        b"\x53\x08\x01\x54",  # field 10 group holding a varint
        b"\x0d" + bytes(4),  # job_id (field 1) with the wrong wire type: unknown
        b"\x2a\x02\x18\x01",  # chunk with an unknown inner field 3
    ]
    base = _reference("job", 3, "p1", 9, 7, _words(2))
    second = _reference("job2", 4, "", 0, 11, _words(3, 1))
    variants = [base + u for u in unknown] + [u + base for u in unknown]
    variants += [base + second, second + base, base + b"\x10\x85\x80\x80\x80\x10"]  # round > 2^32
    for _ in range(40):
        parts = unknown[:]
        rng.shuffle(parts)
        variants.append(b"".join(parts[:3]) + base + b"".join(parts[3:]))
    for data in variants:
        expected = party_pb2.ShareChunk.FromString(data)
        view = wire.decode_share_chunk(data)
        assert view.job_id == expected.job_id
        assert view.round == expected.round
        assert view.party_id == expected.party_id
        assert view.total_length == expected.total_length
        assert view.offset == expected.chunk.offset
        assert view.words.tobytes() == expected.chunk.data


MALFORMED = [
    b"\x0a",  # key without a length
    b"\x0a\x05ab",  # string runs past the end
    b"\x10",  # varint missing
    b"\x10\x80",  # truncated varint
    b"\x10" + b"\xff" * 11 + b"\x01",  # overlong varint
    b"\x00\x01",  # field number 0
    b"\x0a\x02\xff\xfe",  # job_id not UTF-8
    b"\x1a\x01\x80",  # party_id not UTF-8
    b"\x2a\x05\x12\x03abc",  # payload not a multiple of 8 bytes
    b"\x2a\x03\x12\x08a",  # payload runs past the chunk
    b"\x2a\x01",  # chunk runs past the end
    b"\x39\x01\x02",  # fixed64 truncated
    b"\x4d\x01",  # fixed32 truncated
    b"\x53\x08\x01",  # group never ends
    b"\x53\x5c",  # group ends with another field number
    b"\x54",  # end group without a start
    b"\x0e",  # wire type 6
    b"\x0f",  # wire type 7
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_input_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        wire.decode_share_chunk(data)


def test_random_bytes_decode_as_protobuf_does_or_raise_protocol_error() -> None:
    rng = random.Random(12)
    valid = _reference("job", 1, "party", 4, 0, _words(4))
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            mutated = bytearray(valid[: rng.randrange(len(valid) + 1)])
            for _ in range(rng.randrange(1, 4)):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            data = bytes(mutated)
        try:
            expected = party_pb2.ShareChunk.FromString(data)
        except DecodeError:
            expected = None
        try:
            view = wire.decode_share_chunk(data)
        except ProtocolError:
            # Refused where protobuf refuses, or for a payload that is not whole words.
            assert expected is None or len(expected.chunk.data) % 8
            continue
        assert expected is not None
        assert (view.job_id, view.round, view.party_id) == (
            expected.job_id,
            expected.round,
            expected.party_id,
        )
        assert (view.total_length, view.offset) == (expected.total_length, expected.chunk.offset)
        assert view.words.tobytes() == expected.chunk.data


def test_encoded_share_chunks_streams_one_message_per_chunk() -> None:
    chunks = [(0, _words(3)), (3, _words(2, 1))]
    out = list(wire.encoded_share_chunks("j", 2, "p", 5, chunks))
    assert out == [_reference("j", 2, "p", 5, o, w) for o, w in chunks]
