"""Map our errors to gRPC status codes on the way out, and back on the way in.

Servers send the error class name in trailing metadata (``mpc-error``) so clients raise the
same class. Unexpected exceptions become INTERNAL with a fixed message: their text could quote
data, so it is neither sent nor logged (only the exception type and where it was raised).
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from mpc import errors

log = logging.getLogger(__name__)

_CODES: dict[type[errors.MpcError], grpc.StatusCode] = {
    errors.ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InputDataError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.QueryError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ProtocolError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PrivacyBudgetError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.TransportError: grpc.StatusCode.UNAVAILABLE,
    errors.JobFailedError: grpc.StatusCode.ABORTED,
    errors.AccessDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.JobNotFoundError: grpc.StatusCode.NOT_FOUND,  # status_for: wins over QueryError
    errors.LimitExceededError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_BY_NAME: dict[str, type[errors.MpcError]] = {cls.__name__: cls for cls in _CODES}
_BY_NAME["PartyFailedError"] = errors.TransportError

F = TypeVar("F", bound=Callable[..., Any])


def status_for(exc: errors.MpcError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


#: What a caller gets instead of a :class:`~mpc.errors.LocalFileError`'s text.
LOCAL_FILE_REASON = "a local file of this server cannot be used; see its log"


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, errors.LocalFileError):  # names local paths: the log gets the text
        log.error("%s", exc)
        context.set_trailing_metadata((("mpc-error", errors.ConfigError.__name__),))
        context.abort(status_for(exc), LOCAL_FILE_REASON)
    if isinstance(exc, errors.MpcError):
        context.set_trailing_metadata((("mpc-error", type(exc).__name__),))
        context.abort(status_for(exc), str(exc))
    log.error("internal error: %s at %s", type(exc).__name__, _where(exc))
    context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def handle_errors(method: F) -> F:
    """Decorate a unary servicer method: our errors become statuses, others INTERNAL."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # servicer methods never call context.abort themselves
            _abort(context, exc)

    return wrapper  # type: ignore[return-value]


def handle_stream_errors(method: F) -> F:
    """Like :func:`handle_errors`, for server-streaming methods."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except Exception as exc:  # servicer methods never call context.abort themselves
            _abort(context, exc)

    return wrapper  # type: ignore[return-value]


def from_rpc_error(exc: grpc.RpcError, what: str) -> errors.MpcError:
    """Turn a failed call into our error; ``what`` names the peer (e.g. "coordinator")."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else ""
    trailing = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    cls = _BY_NAME.get(str(trailing.get("mpc-error", "")))
    if cls is not None:
        return cls(details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.TransportError(f"{what} did not answer before the deadline")
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.TransportError(f"{what} is unreachable or refused TLS: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return errors.TransportError(f"{what} refused the call: {details}")
    name = code.name if code is not None else "UNKNOWN"
    return errors.TransportError(f"{what} failed with {name}: {details}")


__all__ = [
    "LOCAL_FILE_REASON",
    "from_rpc_error",
    "handle_errors",
    "handle_stream_errors",
    "status_for",
]
