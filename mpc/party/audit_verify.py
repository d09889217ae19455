"""Reading and verifying a party's audit log (``mpc audit show`` and ``mpc audit verify``).

Split from :mod:`mpc.party.audit` (which re-exports every name here; the format and the
torn-line recovery are described there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc.errors import LocalFileError
from mpc.party.audit_records import EVENT_RECOVERED, GENESIS, _check_line, line_hash


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`."""

    path: Path
    ok: bool
    records: int  # records checked (all of them when ok)
    head: str  # line_hash of the last good line: the chain head to keep elsewhere
    line: int | None = None  # first bad line (1-based)
    problem: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "records": self.records,
            "head": self.head,
            "line": self.line,
            "problem": self.problem,
            "notes": list(self.notes),
        }


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, bytes without newline, complete)`` of every line of ``path``."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield number, raw[:-1] if complete else raw, complete


def verify(path: Path) -> Verification:
    """Check every line of the log and the chain; stop at the first problem.

    Raises :class:`ConfigError` when the file cannot be read.
    """
    prev, seq, records = GENESIS, 0, 0
    notes: list[str] = []
    pending: tuple[int, bytes, str] | None = None  # a bad line: a sealed torn write?

    def failed(line: int, problem: str) -> Verification:
        return Verification(path, False, records, prev, line, problem, tuple(notes))

    try:
        for number, body, complete in _lines(path):
            if not complete:
                if pending is not None:
                    return failed(pending[0], pending[2])
                return failed(
                    number,
                    "torn last line: an interrupted write (e.g. a crash while appending); the "
                    "party seals it when it next starts",
                )
            checked = _check_line(body)
            if pending is not None:
                record = checked.record
                if (
                    checked.problem is None
                    and record is not None
                    and record.get("event") == EVENT_RECOVERED
                    and record.get("torn_sha256") == line_hash(pending[1])
                ):
                    notes.append(
                        f"line {pending[0]}: a torn write (e.g. a crash), sealed by the party "
                        f"at line {number}"
                    )
                    pending = None
                else:
                    return failed(pending[0], pending[2])
            elif checked.problem is not None:
                pending = (number, body, checked.problem)
                continue
            if checked.problem is not None or checked.record is None:
                return failed(number, checked.problem or "bad JSON")
            record = checked.record
            if record["prev"] != prev:
                return failed(
                    number,
                    "broken link: prev is not the hash of the line before (a record was "
                    "deleted, inserted or moved)",
                )
            if record["seq"] != seq + 1:
                return failed(number, f"seq {record['seq']} where {seq + 1} was expected")
            prev, seq, records = line_hash(body), seq + 1, records + 1
    except OSError as exc:  # `mpc audit show/verify`, on the party's host
        raise LocalFileError(f"cannot read the audit log {path}: {exc.strerror}") from exc
    if pending is not None:
        return failed(pending[0], pending[2])
    return Verification(path, True, records, prev, notes=tuple(notes))


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """``(line number, record or None when the line is not a JSON object)`` per line.

    For display only: nothing is verified here (see :func:`verify`).
    """
    try:
        for number, body, _ in _lines(path):
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            yield number, value if isinstance(value, dict) else None
    except OSError as exc:  # `mpc audit show/verify`, on the party's host
        raise LocalFileError(f"cannot read the audit log {path}: {exc.strerror}") from exc
