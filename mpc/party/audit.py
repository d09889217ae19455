"""The party's audit log: every job it saw, accepted or refused, hash-chained, append-only.

A data owner reads it to see what was asked of their data and what their party answered
(``mpc audit show``), and checks it was not edited (``mpc audit verify``). It holds only what
the signed spec and the party's decision say in public: time, client, statistic, dataset,
columns and bounds, participants, rounds, privacy parameters and the rho charged, the
outcome and the public reason of a refusal. Never a value, a share, a seed or a key.

Format: JSON Lines. Each line is the canonical JSON (sorted keys, no spaces, ASCII) of one
record with

* ``seq``: 1 for the first record, then +1 per record;
* ``prev``: hex SHA-256 of the previous line's bytes (without its newline), 64 zeros first;
* ``hash``: hex SHA-256 of the record's canonical JSON without ``hash``.

Editing a record breaks its ``hash``; deleting, inserting or reordering lines breaks a
``prev`` link. (Anyone who can write the file can also recompute the whole chain: to make
that detectable too, keep the chain head printed by ``mpc audit verify`` somewhere else.)

Durability: a record is written with one ``write`` on an ``O_APPEND`` descriptor, then
``fsync``'d, before the party answers the job; appends are serialised by a lock in the
process and by ``flock`` between processes.

A crash in the middle of a write leaves a *torn* last line (no newline). ``verify`` reports
it. At its next start (or append) the party seals it: it ends the fragment with a newline,
logs a warning and appends a ``recovered`` record that carries the fragment's SHA-256 and
links to the last complete line, and the chain continues from there. ``verify`` then accepts
the sealed fragment and lists it as a note (a torn record was never acknowledged: the party
answers only after the write is durable). A last *complete* line that does not verify (it
was edited) is not repaired: the party logs a warning and links the next record to that
line's bytes as they are, so ``verify`` keeps pointing at the edited line.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mpc.errors import LocalFileError
from mpc.party.audit_records import (
    ACCEPTED,
    EVENT_JOB,
    EVENT_RECOVERED,
    GENESIS,
    REFUSED,
    AuditError,
    AuditFileError,
    _check_line,
    canonical,
    client_of,
    job_record,
    line_hash,
    now,
    record_hash,
)
from mpc.party.audit_verify import Verification, read_records, verify

log = logging.getLogger(__name__)

#: Read the tail of the log in blocks of this size.
_BLOCK = 64 * 1024
_FILE_MODE = 0o640


# --- writing -------------------------------------------------------------------------------


def _read_tail(path: Path, size: int) -> tuple[bytes | None, bytes]:
    """``(last complete line or None, bytes after the last newline)`` of the first ``size``
    bytes of ``path``, reading backwards from the end."""
    with path.open("rb") as handle:
        buffer = b""
        position = size
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            newline = buffer.rfind(b"\n")
            if newline == -1:
                continue
            before = buffer.rfind(b"\n", 0, newline)
            if before != -1 or position == 0:
                return buffer[before + 1 : newline], buffer[newline + 1 :]
        return None, buffer


def _count_lines(path: Path, size: int) -> int:
    count = 0
    with path.open("rb") as handle:
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(_BLOCK, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


class AuditLog:
    """Appends hash-chained records to one file, each durable before :meth:`append` returns.

    Opening checks the file can be written (a party that cannot record jobs must not start)
    and continues the chain from its last line, sealing a torn last line (see the module).
    """

    def __init__(self, path: Path, party_id: str = "") -> None:
        self.path = path
        self.party_id = party_id
        self._lock = threading.Lock()
        #: (inode, size) of the file after our last write; the chain state below is valid
        #: only while the file still has exactly this identity and size.
        self._known: tuple[int, int] | None = None
        self._prev = GENESIS
        self._seq = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # at start-up; a LocalFileError's text is never sent
            raise LocalFileError(
                f"cannot create the folder of the audit log {path}: {exc.strerror}"
            ) from exc
        with self._lock:
            self._with_file(lambda fd: None, what="open")

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Add ``seq``, ``prev`` and ``hash`` to ``record``, write it, fsync; return it."""
        written: list[dict[str, Any]] = []
        with self._lock:
            self._with_file(lambda fd: written.append(self._write_locked(fd, record)))
        return written[0]

    # --- internals -----------------------------------------------------------------------

    def _with_file(self, action: Callable[[int], object], what: str = "append to") -> None:
        """Open the log for appending, lock it, bring the chain state up to date, act."""
        try:
            created = not self.path.exists()
            fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
        except OSError as exc:
            self._known = None
            log.error("cannot %s the audit log %s: %s", what, self.path, exc.strerror)
            if what == "open":  # at start-up, for the operator: the path is named
                raise AuditFileError(
                    f"cannot open the audit log {self.path}: {exc.strerror}"
                ) from exc
            raise AuditError(
                f"party {self.party_id!r} cannot {what} its audit log (see its log)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if created:
                _fsync_dir(self.path.parent)
            self._sync_locked(fd)
            action(fd)
        except OSError as exc:
            self._known = None  # re-read the tail next time: the write may be torn
            log.error("cannot %s the audit log %s: %s", what, self.path, exc.strerror)
            raise AuditError(
                f"party {self.party_id!r} cannot {what} its audit log (see its log)"
            ) from exc
        finally:
            os.close(fd)  # releases the flock

    def _sync_locked(self, fd: int) -> None:
        """Continue the chain from the file's last line (unless we wrote that line)."""
        stat = os.fstat(fd)
        if self._known == (stat.st_ino, stat.st_size):
            return
        if self._known is not None and self._known[0] == stat.st_ino:
            if stat.st_size < self._known[1]:
                log.warning(
                    "audit log %s shrank from %d to %d bytes since this party wrote it "
                    "(truncated?); run `mpc audit verify`",
                    self.path,
                    self._known[1],
                    stat.st_size,
                )
        elif self._known is not None:
            log.warning("audit log %s was replaced since this party wrote it", self.path)
        last, fragment = _read_tail(self.path, stat.st_size)
        torn = b""
        if fragment:
            checked = _check_line(fragment)
            if checked.problem is None:
                # A whole record whose newline did not make it: complete it.
                log.warning("audit log %s: last record had no newline; completed", self.path)
                _write_all(fd, b"\n")
                last = fragment
            else:
                torn = fragment
        self._prev, self._seq = GENESIS, 0
        if last is not None:
            self._prev = line_hash(last)
            checked = _check_line(last)
            seq = checked.record.get("seq") if checked.record else None
            if checked.problem is not None:
                log.warning(
                    "audit log %s: its last complete line does not verify (%s); the chain "
                    "continues after it as it is: run `mpc audit verify`",
                    self.path,
                    checked.problem,
                )
            if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                self._seq = seq
            else:
                self._seq = _count_lines(self.path, stat.st_size)
        self._known = (stat.st_ino, os.fstat(fd).st_size)
        if torn:
            log.warning(
                "audit log %s: its last line is torn (%d bytes of an interrupted write, e.g. a "
                "crash); sealing it and continuing the chain from the last complete record",
                self.path,
                len(torn),
            )
            recovery = {
                "event": EVENT_RECOVERED,
                "time": now(),
                "party": self.party_id,
                "torn_bytes": len(torn),
                "torn_sha256": line_hash(torn),
                "reason": "torn last line (an interrupted write) sealed",
            }
            self._write_locked(fd, recovery, prefix=b"\n")

    def _write_locked(
        self, fd: int, record: Mapping[str, Any], prefix: bytes = b""
    ) -> dict[str, Any]:
        full = {**record, "seq": self._seq + 1, "prev": self._prev}
        full.pop("hash", None)
        full["hash"] = record_hash(full)
        line = canonical(full)
        self._known = None  # until the write is durable
        _write_all(fd, prefix + line + b"\n")
        os.fsync(fd)
        stat = os.fstat(fd)
        self._known = (stat.st_ino, stat.st_size)
        self._prev, self._seq = line_hash(line), self._seq + 1
        return full


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "ACCEPTED",
    "EVENT_JOB",
    "EVENT_RECOVERED",
    "GENESIS",
    "REFUSED",
    "AuditError",
    "AuditLog",
    "Verification",
    "canonical",
    "client_of",
    "job_record",
    "line_hash",
    "read_records",
    "record_hash",
    "verify",
]
