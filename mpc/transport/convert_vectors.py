"""Vectors on the wire: ring and float vectors <-> little-endian bytes in chunks.

Vectors travel as little-endian 64-bit words in chunks of about 1 MiB (``CHUNK_WORDS``). Part
of the conversion layer (:mod:`mpc.transport.convert` re-exports every name here).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from mpc.errors import ProtocolError
from mpc.proto.v1 import common_pb2
from mpc.ring import RingVector
from mpc.sharing import CHUNK_WORDS

_LE_U64 = np.dtype("<u8")
_LE_F64 = np.dtype("<f8")


def ring_to_bytes(words: RingVector) -> bytes:
    return np.ascontiguousarray(words, dtype=_LE_U64).tobytes()


def floats_to_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=_LE_F64).tobytes()


def floats_from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 8:
        raise ProtocolError("float vector length is not a multiple of 8 bytes")
    return np.frombuffer(data, dtype=_LE_F64).astype(np.float64)


def float_chunks(
    values: np.ndarray, chunk_words: int = CHUNK_WORDS
) -> Iterator[common_pb2.VectorChunk]:
    data = np.ascontiguousarray(values, dtype=_LE_F64)
    for offset in range(0, data.size, chunk_words):
        yield common_pb2.VectorChunk(
            offset=offset, data=data[offset : offset + chunk_words].tobytes()
        )


def floats_from_chunks(length: int, chunks: Iterable[common_pb2.VectorChunk]) -> np.ndarray:
    out = np.empty(length, dtype=np.float64)
    filled = 0
    for chunk in chunks:
        if chunk.offset != filled or len(chunk.data) % 8:
            raise ProtocolError("result chunks arrived out of order or malformed")
        part = np.frombuffer(chunk.data, dtype=_LE_F64)
        if filled + part.size > length:
            raise ProtocolError("result is longer than its header says")
        out[filled : filled + part.size] = part
        filled += part.size
    if filled != length:
        raise ProtocolError(f"result has {filled} values, its header says {length}")
    return out
