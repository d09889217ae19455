"""The error tree of mpc.

Every error a user can see is an :class:`MpcError`. Messages say what was wrong and what to
change; they never carry input values, shares, seeds or keys::

    MpcError
    +-- ConfigError          bad config file, flag or certificate setup
    +-- InputDataError       bad dataset: unknown column, non-numeric cell, NaN, empty file
    +-- QueryError           bad query: lo > hi, unknown statistic, a job that would wrap the ring
        +-- JobNotFoundError an unknown job id, or a job the caller may not see
    +-- ProtocolError        a message out of stage, of the wrong length, or failing verification
    +-- PrivacyBudgetError   a job that would exceed a privacy budget
    +-- LimitExceededError   a per-client or server limit (queued jobs, watch streams) is reached
    +-- TransportError       a party or the coordinator is unreachable, too slow, or refused TLS
        +-- PartyFailedError a named party failed or stopped answering during a job
    +-- AccessDeniedError    the caller's certificate does not allow this call
    +-- JobFailedError       a job ended in the FAILED state (the coordinator's message inside)

gRPC status codes are mapped to these classes at the transport boundary
(:mod:`mpc.transport.errors`).
"""

from __future__ import annotations


class MpcError(Exception):
    """Base class of every error raised by mpc."""


class ConfigError(MpcError):
    """A configuration file, command-line flag or certificate is wrong."""


class LocalFileError(ConfigError):
    """A file of this process's own host cannot be used (its path in the text, for the local
    operator). Never sent as is: :mod:`mpc.transport.errors` logs the text and sends a fixed
    public reason, so a path or line number of a party never reaches a coordinator or client.
    """


class InputDataError(MpcError):
    """A dataset cannot be used: unknown dataset or column, bad cell, empty file."""


class QueryError(MpcError):
    """A query is malformed or cannot run safely (e.g. it could overflow the ring)."""


class JobNotFoundError(QueryError):
    """No such job, or one the caller may not see (the two are indistinguishable)."""


class ProtocolError(MpcError):
    """A protocol message is out of stage, malformed, or fails verification."""


class PrivacyBudgetError(MpcError):
    """A job would exceed a privacy budget."""


class LimitExceededError(MpcError):
    """A per-client or coordinator-wide limit is reached (too many queued jobs or watch
    streams); retrying later can succeed."""


class TransportError(MpcError):
    """A peer is unreachable, too slow, or refused the TLS handshake."""


class PartyFailedError(TransportError):
    """A named party failed or stopped answering during a job."""

    def __init__(self, party_id: str, reason: str) -> None:
        super().__init__(f"party {party_id!r}: {reason}")
        self.party_id = party_id
        self.reason = reason


class AccessDeniedError(MpcError):
    """The caller's certificate role or name does not allow this call."""


class JobFailedError(MpcError):
    """A job ended in the FAILED state; nothing was revealed."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "InputDataError",
    "JobFailedError",
    "JobNotFoundError",
    "LimitExceededError",
    "LocalFileError",
    "MpcError",
    "PartyFailedError",
    "PrivacyBudgetError",
    "ProtocolError",
    "QueryError",
    "TransportError",
]
