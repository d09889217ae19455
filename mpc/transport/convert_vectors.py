"""Float vectors on the wire: float64 <-> little-endian bytes in chunks of about 1 MiB
(``CHUNK_WORDS``). Part of the conversion layer (:mod:`mpc.transport.convert` re-exports every
name here); masked shares, the ring vectors, go through :mod:`mpc.transport.wire`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from mpc.errors import ProtocolError
from mpc.proto.v1 import common_pb2
from mpc.sharing import CHUNK_WORDS

_LE_F64 = np.dtype("<f8")


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


class FloatFiller:
    """A float64 vector of known length, filled in order from little-endian byte chunks
    (each copied once, straight into place)."""

    def __init__(self, length: int) -> None:
        self.values = np.empty(length, dtype=np.float64)
        self.filled = 0

    def add(self, data: bytes, offset: int | None = None) -> None:
        if (offset is not None and offset != self.filled) or len(data) % 8:
            raise ProtocolError("result chunks arrived out of order or malformed")
        part = np.frombuffer(data, dtype=_LE_F64)
        if self.filled + part.size > self.values.size:
            raise ProtocolError("result is longer than its header says")
        self.values[self.filled : self.filled + part.size] = part
        self.filled += part.size

    def finish(self) -> np.ndarray:
        if self.filled != self.values.size:
            raise ProtocolError(
                f"result has {self.filled} values, its header says {self.values.size}"
            )
        return self.values


def floats_from_chunks(length: int, chunks: Iterable[common_pb2.VectorChunk]) -> np.ndarray:
    filler = FloatFiller(length)
    for chunk in chunks:
        filler.add(chunk.data, chunk.offset)
    return filler.finish()
