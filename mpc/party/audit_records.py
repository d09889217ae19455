"""Audit log records: their canonical form, hashes, and the check of one line.

Split from :mod:`mpc.party.audit` (which re-exports every name here; the format is described
there). Records hold only public facts of a job: never a value, a share, a seed or a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mpc.errors import ConfigError, LocalFileError, MpcError
from mpc.protocol.rounds import schedule_of
from mpc.protocol.spec import JobSpec
from mpc.stats.privacy import NoisePlan, plan_noise

#: ``prev`` of the first record.
GENESIS = "0" * 64
ACCEPTED = "accepted"
REFUSED = "refused"
EVENT_JOB = "job"
EVENT_RECOVERED = "recovered"


class AuditError(ConfigError):
    """The party cannot write its audit log; it answers no job it cannot record."""


class AuditFileError(AuditError, LocalFileError):
    """The audit log's file cannot be opened (its path in the text, for the operator; the
    transport sends only a fixed reason)."""


# --- records -------------------------------------------------------------------------------


def canonical(record: Mapping[str, Any]) -> bytes:
    """A record's canonical JSON: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """The ``hash`` of a record: SHA-256 over its canonical JSON without ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def line_hash(line: bytes) -> str:
    """The ``prev`` of the record after ``line`` (its bytes without the newline)."""
    return hashlib.sha256(line).hexdigest()


def now() -> str:
    """UTC time with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def client_of(spec: JobSpec) -> str:
    """The client a job was asked for, when the spec names one; else ``"unknown"``.

    Works whether a spec carries ``client_id`` (a name) or ``client`` (a name, or an object
    with a ``name`` / ``client_id``), and with specs that carry neither yet.
    """
    for attribute in ("client_id", "client"):
        try:
            value = getattr(spec, attribute, None)
        except Exception:  # a malformed certificate in an unverified spec: no name
            value = None
        if isinstance(value, str) and value:
            return value
        for inner in ("name", "client_id"):
            nested = getattr(value, inner, None)
            if isinstance(nested, str) and nested:
                return nested
    return "unknown"


def _dp(spec: JobSpec, plan: NoisePlan | None, charged: bool) -> dict[str, Any] | None:
    privacy = spec.privacy
    if privacy is None:
        return None
    if plan is None:
        try:
            plan = plan_noise(spec)  # public: from the spec alone (the cost it would have had)
        except MpcError:
            plan = None
    return {
        "noise": privacy.noise.value,
        "epsilon": privacy.epsilon,
        "delta": privacy.delta,
        "colluders": privacy.colluders,
        "rho": float(plan.cost.rho) if plan is not None else None,
        "charged": charged,
    }


def job_record(
    party_id: str,
    spec: JobSpec,
    outcome: str,
    *,
    reason: str = "",
    error: str = "",
    plan: NoisePlan | None = None,
    charged: bool = False,
) -> dict[str, Any]:
    """The audit record of one job (without ``seq``, ``prev`` and ``hash``): public only."""
    try:
        rounds: int | None = schedule_of(spec).total_rounds
    except MpcError:
        rounds = None
    return {
        "event": EVENT_JOB,
        "time": now(),
        "party": party_id,
        "job_id": spec.job_id,
        "client": client_of(spec),
        "statistic": spec.statistic.value,
        "dataset": spec.dataset,
        "columns": [c.column for c in spec.columns],
        "bounds": {c.column: [c.lo, c.hi] for c in spec.columns},
        "participants": list(spec.party_ids),
        "rounds": rounds,
        "dp": _dp(spec, plan, charged),
        "outcome": outcome,
        "reason": reason,
        "error": error,
    }


# --- checking lines ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line of the log, parsed and checked on its own (not yet against the chain)."""

    record: dict[str, Any] | None  # None: not JSON at all (perhaps a torn write)
    problem: str | None  # None: the line is a well-formed record whose hash verifies


def _check_line(body: bytes) -> _Line:
    try:
        value = json.loads(body)
    except ValueError:
        return _Line(None, "bad JSON (not a complete record)")
    if not isinstance(value, dict):
        return _Line({}, "not a JSON object")
    seq, prev, digest = value.get("seq"), value.get("prev"), value.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int):
        return _Line(value, "missing or malformed seq")
    for name, text in (("prev", prev), ("hash", digest)):
        if not isinstance(text, str) or len(text) != 64:
            return _Line(value, f"missing or malformed {name}")
    if record_hash(value) != digest:
        return _Line(value, "hash mismatch: the record was changed after it was written")
    try:
        if canonical(value) != body:
            return _Line(value, "not in canonical form: the line was rewritten")
    except ValueError:
        return _Line(value, "not in canonical form: the line was rewritten")
    return _Line(value, None)
