"""The checked-in generated code must match the .proto files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.fail("grpcio-tools is missing: install the dev extra (pip install -e '.[dev]')")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_protos import generate
    finally:
        sys.path.pop(0)
    generated = generate(tmp_path)
    assert generated, "protoc produced nothing"
    stale = [
        path.name
        for path in generated
        if path.read_bytes() != (ROOT / "mpc" / "proto" / "v1" / path.name).read_bytes()
    ]
    assert not stale, f"run `make protos`: {stale} differ from the .proto files"
    checked_in = {p.name for p in (ROOT / "mpc" / "proto" / "v1").glob("*_pb2*.py*")}
    assert checked_in == {p.name for p in generated}


def test_vectors_travel_as_bytes_not_repeated_fields() -> None:
    from mpc.proto.v1 import common_pb2, coordinator_pb2, party_pb2

    for module in (common_pb2, coordinator_pb2, party_pb2):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for field in message.fields:
                repeated_number = field.is_repeated and field.type in (
                    field.TYPE_DOUBLE,
                    field.TYPE_UINT64,
                    field.TYPE_INT64,
                    field.TYPE_FLOAT,
                )
                assert not repeated_number, f"{message.name}.{field.name} is a repeated number"
