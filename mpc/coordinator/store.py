"""Job records in SQLite (the embedded default).

Durable writes (WAL, synchronous=FULL). A job that was pending or running when the
coordinator stopped is marked failed at the next start: its rounds cannot be resumed
mid-flight and nothing was revealed for it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from mpc.coordinator.result_files import FILE_RESULT_BYTES, read_result_file, write_result_file
from mpc.errors import ConfigError, TransportError


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass
class JobRecord:
    job_id: str
    state: JobState
    query: dict[str, object]
    submitted_by: str
    created_at: float
    stage: str = ""
    message: str = ""
    progress: float = 0.0
    spec: dict[str, object] | None = None
    parties: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    values: np.ndarray | None = None
    tolerance: float = 0.0
    error: str = ""
    finished_at: float = 0.0
    privacy: dict[str, object] | None = None


@dataclass(frozen=True)
class JobSummary:
    """One line of a job listing: what ran, for whom, when, and what privacy it spent."""

    job_id: str
    state: JobState
    statistic: str
    dataset: str
    submitted_by: str
    created_at: float  # unix seconds
    finished_at: float  # 0 while unfinished
    epsilon_spent: float  # 0 without differential privacy
    error: str

    def to_json(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "statistic": self.statistic,
            "dataset": self.dataset,
            "submitted_by": self.submitted_by,
            "created_at": self.created_at,
            "finished_at": self.finished_at or None,
            "epsilon_spent": self.epsilon_spent,
            "error": self.error,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id       TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    stage        TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL DEFAULT '',
    progress     REAL NOT NULL DEFAULT 0,
    query        TEXT NOT NULL,
    spec         TEXT,
    submitted_by TEXT NOT NULL,
    parties      TEXT NOT NULL DEFAULT '[]',
    labels       TEXT NOT NULL DEFAULT '[]',
    tolerance    REAL NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    finished_at  REAL NOT NULL DEFAULT 0,
    privacy      TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (submitted_by, created_at);
-- Revealed values live apart from the job row: progress updates of a job never rewrite a
-- large result (SQLite rewrites all of a row's overflow pages on any update of the row).
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT PRIMARY KEY REFERENCES jobs (job_id),
    vals   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS training_rounds (
    job_id     TEXT NOT NULL,
    round      INTEGER NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (job_id, round)
);
"""


class JobStore:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the coordinator database {path}: {exc}") from exc
        self._lock = threading.Lock()
        #: Large results, one file per job beside the database (see :meth:`succeed`).
        self.results_dir = path.with_name(path.name + ".results")
        with self._lock:
            try:
                # 64 KiB pages: a 10^6-value result is an 8 MiB blob, written as 16x fewer
                # overflow pages. Takes effect for a new database only (must precede WAL).
                self._db.execute("PRAGMA page_size=65536")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
                if "model" not in columns:  # databases from before training jobs
                    self._db.execute("ALTER TABLE jobs ADD COLUMN model TEXT")
                stored = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
                if "file" not in stored:  # databases from before result files
                    self._db.execute("ALTER TABLE results ADD COLUMN file TEXT")
            except sqlite3.Error as exc:  # e.g. not a database, or corrupt
                self._db.close()
                raise ConfigError(
                    f"cannot open the coordinator database {path}: {exc} (restore it from a "
                    "backup or move it aside to start with an empty job history)"
                ) from exc

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock for a write; a failed write (disk full, read-only, I/O error) is an
        MpcError naming the database, not a bare sqlite3 error (an INTERNAL to clients)."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise TransportError(
                    f"the coordinator cannot write its job database: {exc}"
                ) from exc

    def close(self) -> None:
        """Fold the write-ahead log into the database so no -wal/-shm files stay behind."""
        with self._lock:
            with suppress(sqlite3.Error):  # closing still checkpoints when it can
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def fail_unfinished(self, reason: str) -> int:
        with self._writing():
            cursor = self._db.execute(
                "UPDATE jobs SET state=?, error=?, finished_at=? WHERE state IN (?, ?)",
                (JobState.FAILED, reason, time.time(), JobState.PENDING, JobState.RUNNING),
            )
            return cursor.rowcount

    def create(self, record: JobRecord) -> None:
        with self._writing():
            self._db.execute(
                "INSERT INTO jobs (job_id, state, query, submitted_by, created_at, stage, "
                "message, progress) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.job_id,
                    record.state,
                    json.dumps(record.query),
                    record.submitted_by,
                    record.created_at,
                    record.stage,
                    record.message,
                    record.progress,
                ),
            )

    def progress(
        self, job_id: str, state: JobState, stage: str, message: str, progress: float
    ) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE jobs SET state=?, stage=?, message=?, progress=? WHERE job_id=?",
                (state, stage, message, progress, job_id),
            )

    def set_spec(self, job_id: str, spec: dict[str, object], parties: list[str]) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE jobs SET spec=?, parties=? WHERE job_id=?",
                (json.dumps(spec), json.dumps(parties), job_id),
            )

    def succeed(
        self,
        job_id: str,
        labels: list[str],
        values: np.ndarray,
        tolerance: float,
        privacy: dict[str, object] | None = None,
        *,
        finished_at: float | None = None,
        message: str = "result revealed",
    ) -> None:
        data = np.ascontiguousarray(values, dtype="<f8")
        big = data.nbytes >= FILE_RESULT_BYTES
        name = write_result_file(self.results_dir, job_id, data) if big else None
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO results (job_id, vals, file) VALUES (?, ?, ?)",
                    (job_id, b"" if name else data.tobytes(), name),
                )
                self._db.execute(
                    "UPDATE jobs SET state=?, stage='done', message=?, "
                    "progress=1, labels=?, tolerance=?, finished_at=?, privacy=? WHERE job_id=?",
                    (
                        JobState.SUCCEEDED,
                        message,
                        json.dumps(labels),
                        tolerance,
                        time.time() if finished_at is None else finished_at,
                        None if privacy is None else json.dumps(privacy),
                        job_id,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read_result(self, job_id: str, vals: bytes | None, name: str | None) -> np.ndarray | None:
        if name:
            return read_result_file(self.results_dir, job_id, name)
        return np.frombuffer(vals, dtype="<f8").copy() if vals is not None else None

    def fail(self, job_id: str, error: str) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE jobs SET state=?, error=?, finished_at=? WHERE job_id=?",
                (JobState.FAILED, error, time.time(), job_id),
            )

    def save_round(self, job_id: str, round_no: int, state: dict[str, object]) -> None:
        """Persist the model after a completed training round (durable before the next).

        Only the latest round is kept (it carries the whole curve so far): a long job's
        checkpoints take the space of one, not of every round."""
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO training_rounds VALUES (?, ?, ?)",
                    (job_id, round_no, json.dumps(state)),
                )
                self._db.execute(
                    "DELETE FROM training_rounds WHERE job_id = ? AND round < ?",
                    (job_id, round_no),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def last_round(self, job_id: str) -> dict[str, object] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM training_rounds WHERE job_id=? ORDER BY round DESC LIMIT 1",
                (job_id,),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def set_model(self, job_id: str, model: dict[str, object]) -> None:
        with self._writing():
            self._db.execute("UPDATE jobs SET model=? WHERE job_id=?", (json.dumps(model), job_id))

    def model(self, job_id: str) -> dict[str, object] | None:
        with self._lock:
            row = self._db.execute("SELECT model FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def owner(self, job_id: str) -> str | None:
        """Who submitted the job (its certificate name), or None for an unknown job."""
        with self._lock:
            row = self._db.execute(
                "SELECT submitted_by FROM jobs WHERE job_id=?", (job_id,)
            ).fetchone()
        return str(row[0]) if row else None

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT jobs.job_id, state, stage, message, progress, query, spec, "
                "submitted_by, parties, labels, results.vals, tolerance, error, created_at, "
                "finished_at, privacy, results.file FROM jobs LEFT JOIN results USING (job_id) "
                "WHERE jobs.job_id=?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        return JobRecord(
            job_id=row[0],
            state=JobState(row[1]),
            stage=row[2],
            message=row[3],
            progress=row[4],
            query=json.loads(row[5]),
            spec=json.loads(row[6]) if row[6] else None,
            submitted_by=row[7],
            parties=json.loads(row[8]),
            labels=json.loads(row[9]),
            values=self._read_result(job_id, row[10], row[16]),
            tolerance=row[11],
            error=row[12],
            created_at=row[13],
            finished_at=row[14],
            privacy=json.loads(row[15]) if row[15] else None,
        )

    def summaries(self, submitted_by: str | None, limit: int) -> list[JobSummary]:
        """Jobs newest first: those of ``submitted_by``, or everyone's for None.

        Reads only small fields (SQLite's JSON functions pick the statistic, dataset and
        epsilon out of the stored JSON), never a result or a histogram's bin edges.
        """
        with self._lock:
            if submitted_by is None:
                cursor = self._db.execute(
                    "SELECT job_id, state, json_extract(query, '$.statistic'), "
                    "json_extract(query, '$.dataset'), submitted_by, created_at, finished_at, "
                    "json_extract(privacy, '$.epsilon_spent'), error FROM jobs "
                    "ORDER BY created_at DESC, job_id DESC LIMIT ?",
                    (limit,),
                )
            else:
                cursor = self._db.execute(
                    "SELECT job_id, state, json_extract(query, '$.statistic'), "
                    "json_extract(query, '$.dataset'), submitted_by, created_at, finished_at, "
                    "json_extract(privacy, '$.epsilon_spent'), error FROM jobs "
                    "WHERE submitted_by=? ORDER BY created_at DESC, job_id DESC LIMIT ?",
                    (submitted_by, limit),
                )
            rows = cursor.fetchall()
        return [
            JobSummary(
                job_id=row[0],
                state=JobState(row[1]),
                statistic=str(row[2] or ""),
                dataset=str(row[3] or ""),
                submitted_by=row[4],
                created_at=row[5],
                finished_at=row[6],
                epsilon_spent=float(row[7] or 0.0),
                error=row[8],
            )
            for row in rows
        ]

    def recent(self, limit: int = 50) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [r[0] for r in rows]
