"""ShareChunk on the wire without protobuf copies: encode straight to bytes, decode to a view.

A masked share is the only large thing that crosses the party -> coordinator link. Through the
generated protobuf classes a ~1 MiB chunk is copied four times on the party (``tobytes``, into
the message, ``SerializeToString``) and once more on the coordinator. Here
:func:`encode_share_chunk` writes the protobuf wire format of ``ShareChunk`` itself (a small
header, then the payload: one copy) and :func:`decode_share_chunk` parses the header and
returns the payload as a read-only ``uint64`` view of the received bytes (no copy).

The bytes are exactly what ``party_pb2.ShareChunk(...).SerializeToString()`` produces (fields
in number order, proto3 defaults omitted, the ``chunk`` message always present), and decoding
follows protobuf's rules: the last value of a repeated scalar wins, repeated ``chunk`` fields
merge, unknown fields (and known fields with another wire type) are skipped. Malformed input
raises :class:`~mpc.errors.ProtocolError`.

gRPC use, for any server-streaming method whose response is ``ShareChunk``: the servicer
yields ``encode_share_chunk(...)`` bytes, the server names the method in the
``share_streams`` of :func:`add_servicer_with_share_streams` (its response serializer then
passes bytes through), and the client calls it through :func:`share_stream_callable`, which
yields :class:`ShareChunkView` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from mpc.errors import ProtocolError
from mpc.ring import RingVector

_LE_U64 = np.dtype("<u8")
_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


@dataclass(frozen=True)
class ShareChunkView:
    """A decoded ShareChunk: its header fields and the payload as little-endian uint64 words.

    ``words`` is a read-only view of the received bytes; its values never appear in ``repr``.
    """

    job_id: str
    round: int
    party_id: str
    total_length: int
    offset: int
    words: RingVector = field(repr=False)


# --- encoding --------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string_field(tag: int, text: str) -> bytes:
    data = text.encode()
    return bytes((tag,)) + _varint(len(data)) + data if data else b""


def _varint_field(tag: int, value: int) -> bytes:
    return bytes((tag,)) + _varint(value) if value else b""


def encode_share_chunk(
    job_id: str, round_id: int, party_id: str, total_length: int, offset: int, words: RingVector
) -> bytes:
    """The serialized ``ShareChunk`` carrying ``words`` (uint64) at ``offset``: one copy."""
    if not 0 <= round_id <= _MASK32 or not 0 <= total_length <= _MASK64:
        raise ProtocolError("share chunk round or length out of range")
    if not 0 <= offset <= _MASK64:
        raise ProtocolError("share chunk offset out of range")
    payload = np.ascontiguousarray(words, dtype=_LE_U64)  # no copy for native uint64 on LE
    size = payload.nbytes
    inner = _varint_field(0x08, offset) + (b"\x12" + _varint(size) if size else b"")
    header = (
        _string_field(0x0A, job_id)
        + _varint_field(0x10, round_id)
        + _string_field(0x1A, party_id)
        + _varint_field(0x20, total_length)
        + b"\x2a"
        + _varint(len(inner) + size)
        + inner
    )
    return b"".join((header, payload.data.cast("B")))


def encoded_share_chunks(
    job_id: str,
    round_id: int,
    party_id: str,
    total_length: int,
    chunks: Iterable[tuple[int, RingVector]],
) -> Iterator[bytes]:
    """One serialized ShareChunk per ``(offset, words)``: what a share-stream servicer yields."""
    for offset, words in chunks:
        yield encode_share_chunk(job_id, round_id, party_id, total_length, offset, words)


# --- decoding --------------------------------------------------------------------------------


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift >= 70:
            raise ProtocolError("share chunk is malformed (truncated or overlong varint)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
        shift += 7


def _skip(buf: memoryview, pos: int, end: int, number: int, wire_type: int) -> int:
    """Skip one field's value (its key already read); returns the position after it."""
    if wire_type == _VARINT:
        return _read_varint(buf, pos, end)[1]
    if wire_type in (_FIXED64, _FIXED32):
        pos += 8 if wire_type == _FIXED64 else 4
    elif wire_type == _LENGTH:
        size, pos = _read_varint(buf, pos, end)
        pos += size
    elif wire_type == _START_GROUP:
        while True:
            key, pos = _read_varint(buf, pos, end)
            if key & 7 == _END_GROUP:
                if key >> 3 != number:
                    raise ProtocolError("share chunk is malformed (mismatched group)")
                return pos
            pos = _skip(buf, pos, end, key >> 3, key & 7)
    else:
        raise ProtocolError(f"share chunk is malformed (wire type {wire_type})")
    if pos > end:
        raise ProtocolError("share chunk is malformed (field runs past the end)")
    return pos


def _fields(buf: memoryview, pos: int, end: int) -> Iterable[tuple[int, int, int, int]]:
    """``(number, wire_type, value_or_start, stop)`` per field; length fields give a span."""
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtocolError("share chunk is malformed (field number 0)")
        if wire_type == _VARINT:
            value, pos = _read_varint(buf, pos, end)
            yield number, wire_type, value, pos
        elif wire_type == _LENGTH:
            size, start = _read_varint(buf, pos, end)
            pos = start + size
            if pos > end:
                raise ProtocolError("share chunk is malformed (field runs past the end)")
            yield number, wire_type, start, pos
        else:
            if wire_type == _END_GROUP:
                raise ProtocolError("share chunk is malformed (unexpected end of group)")
            pos = _skip(buf, pos, end, number, wire_type)


def _text(buf: memoryview, start: int, stop: int) -> str:
    try:
        return str(buf[start:stop], "utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("share chunk has a string field that is not UTF-8") from None


def decode_share_chunk(data: bytes) -> ShareChunkView:
    """Parse a serialized ``ShareChunk``; the payload is a view of ``data`` (no copy)."""
    buf = memoryview(data).cast("B")
    job_id = party_id = ""
    round_id = total_length = offset = 0
    span = (0, 0)
    for number, wire_type, value, stop in _fields(buf, 0, len(buf)):
        if wire_type == _VARINT:
            if number == 2:
                round_id = value & _MASK32
            elif number == 4:
                total_length = value
        elif number == 1:
            job_id = _text(buf, value, stop)
        elif number == 3:
            party_id = _text(buf, value, stop)
        elif number == 5:  # VectorChunk; repeated occurrences merge
            for inner, inner_type, inner_value, inner_stop in _fields(buf, value, stop):
                if inner == 1 and inner_type == _VARINT:
                    offset = inner_value
                elif inner == 2 and inner_type == _LENGTH:
                    span = (inner_value, inner_stop)
    if (span[1] - span[0]) % 8:
        raise ProtocolError("vector chunk length is not a multiple of 8 bytes")
    words = np.frombuffer(buf[span[0] : span[1]], dtype=_LE_U64)
    return ShareChunkView(job_id, round_id, party_id, total_length, offset, words)


# --- gRPC registration -----------------------------------------------------------------------


def _pass_through(message: bytes | Any) -> bytes:
    """Encoded chunks go out as they are; a protobuf message (still) works too."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def share_stream_callable(
    channel: grpc.Channel, method: str, request_type: Any
) -> grpc.UnaryStreamMultiCallable:
    """A client stub method for a server stream of ShareChunk whose responses arrive as
    :class:`ShareChunkView` (``method`` is the full path, e.g. "/mpc.proto.v1.Party/Contribute")."""
    return channel.unary_stream(
        method,
        request_serializer=request_type.SerializeToString,
        response_deserializer=decode_share_chunk,
    )


def share_stream_handler(
    behavior: Callable[..., Any], request_deserializer: Callable[[bytes], Any] | None
) -> grpc.RpcMethodHandler:
    """A server-streaming handler whose ``behavior`` yields :func:`encode_share_chunk` bytes:
    they go on the wire as they are (no response serializer)."""
    return grpc.unary_stream_rpc_method_handler(
        behavior, request_deserializer=request_deserializer, response_serializer=_pass_through
    )


class _Registrar:
    """Stands in for the ``grpc.Server`` while a generated ``add_*Servicer_to_server`` runs:
    takes its handler dict, swaps the share-stream methods for :func:`share_stream_handler`
    versions (same behavior and request deserializer) and registers the result."""

    def __init__(self, server: grpc.Server, share_streams: Iterable[str]) -> None:
        self._server = server
        self._share_streams = tuple(share_streams)
        self.registered = False

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        pass  # done in add_registered_method_handlers, from the same dict, with the swaps

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        handlers = dict(handlers)
        for name in self._share_streams:
            generated = handlers.get(name)
            if generated is None or not generated.response_streaming:
                raise ValueError(f"{service} has no server-streaming method {name!r}")
            handlers[name] = share_stream_handler(
                generated.unary_stream, generated.request_deserializer
            )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, handlers),)
        )
        self._server.add_registered_method_handlers(service, handlers)
        self.registered = True


def add_servicer_with_share_streams(
    add_to_server: Callable[[Any, Any], None],
    servicer: Any,
    server: grpc.Server,
    share_streams: Iterable[str],
) -> None:
    """Register ``servicer`` as the generated ``add_to_server`` would, except that the
    server-streaming methods named in ``share_streams`` yield encoded ShareChunk bytes (from
    :func:`encode_share_chunk`) that are sent without a protobuf serializer."""
    registrar = _Registrar(server, share_streams)
    add_to_server(servicer, registrar)
    if not registrar.registered:  # generated code from a grpcio-tools without registration
        raise RuntimeError("the generated add_*_to_server did not register a handler dict")


__all__ = [
    "ShareChunkView",
    "add_servicer_with_share_streams",
    "decode_share_chunk",
    "encode_share_chunk",
    "encoded_share_chunks",
    "share_stream_callable",
    "share_stream_handler",
]
