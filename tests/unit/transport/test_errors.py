"""What a failed call sends: an error's own text, except a LocalFileError's (it names local
paths): the caller gets a fixed reason and the server's log the text."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from mpc.errors import ConfigError, LocalFileError, QueryError
from mpc.transport.errors import LOCAL_FILE_REASON, handle_errors


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, str], ...] = ()
        self.status: tuple[grpc.StatusCode, str] | None = None

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted


class Servicer:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @handle_errors
    def Call(self, request: Any, context: Any) -> None:
        raise self.error


def _send(error: Exception) -> FakeContext:
    context = FakeContext()
    with pytest.raises(Aborted):
        Servicer(error).Call(None, context)
    return context


def test_a_local_file_error_sends_a_fixed_reason_and_logs_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_path = "/srv/hospital-a/audit/2026/audit.jsonl"
    with caplog.at_level(logging.ERROR, logger="mpc.transport.errors"):
        context = _send(LocalFileError(f"cannot read the audit log {secret_path}: denied"))
    assert context.status == (grpc.StatusCode.FAILED_PRECONDITION, LOCAL_FILE_REASON)
    assert dict(context.trailing) == {"mpc-error": "ConfigError"}
    assert secret_path not in repr(context.status)
    assert secret_path in caplog.text  # the operator still learns where


def test_other_errors_send_their_own_public_text() -> None:
    context = _send(QueryError("unknown dataset 'x'"))
    assert context.status == (grpc.StatusCode.INVALID_ARGUMENT, "unknown dataset 'x'")
    assert isinstance(LocalFileError("x"), ConfigError)  # still a configuration problem
