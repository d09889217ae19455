"""Large results live in files beside the job database: written durably before the job's row
says it succeeded, read back after a restart, small ones stay in SQLite, and a lost file is a
clear error (never wrong values)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from mpc.coordinator.result_files import FILE_RESULT_BYTES
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.errors import LocalFileError, TransportError


def _done(store: JobStore, job_id: str, values: np.ndarray) -> None:
    store.create(JobRecord(job_id, JobState.PENDING, {"statistic": "vector_sum"}, "al", 1.0))
    store.succeed(job_id, ["value"], values, 1e-6, finished_at=time.time())


def test_large_results_go_to_files_and_small_ones_stay_in_the_database(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    big = np.random.default_rng(1).normal(size=FILE_RESULT_BYTES // 8 + 3)
    small = np.array([1.5, -2.25, np.nan])
    _done(store, "job-big", big)
    _done(store, "job-small", small)
    assert sorted(p.name for p in store.results_dir.iterdir()) == ["job-big.f64"]
    store.close()
    reopened = JobStore(path)  # a restart reads both back
    try:
        got = reopened.get("job-big")
        assert got is not None and got.state is JobState.SUCCEEDED
        np.testing.assert_array_equal(got.values, big)  # type: ignore[arg-type]
        np.testing.assert_array_equal(reopened.get("job-small").values, small)  # type: ignore[union-attr]
        (reopened.results_dir / "job-big.f64").unlink()
        with pytest.raises(TransportError, match="result of job job-big is missing") as lost:
            reopened.get("job-big")
        assert str(tmp_path) not in str(lost.value)  # the path goes to the log only
    finally:
        reopened.close()


def test_a_database_from_before_result_files_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE results (job_id TEXT PRIMARY KEY, vals BLOB NOT NULL);"
        "INSERT INTO results VALUES ('job-old', x'000000000000f83f');"  # 1.5
    )
    db.commit()
    db.close()
    store = JobStore(path)
    try:
        store.create(JobRecord("job-old", JobState.PENDING, {"statistic": "sum"}, "al", 1.0))
        got = store.get("job-old")
        assert got is not None and got.values is not None and got.values.tolist() == [1.5]
        _done(store, "job-new", np.zeros(FILE_RESULT_BYTES // 8))  # the new column works
        assert store.get("job-new").values.size == FILE_RESULT_BYTES // 8  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_result_file_that_cannot_be_written_fails_clearly(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    try:
        store.results_dir.write_text("not a directory")  # e.g. a read-only or broken volume
        with pytest.raises(LocalFileError, match="cannot write a result file"):
            _done(store, "job-x", np.zeros(FILE_RESULT_BYTES // 8))
        with pytest.raises(TransportError, match="cannot name a result file"):
            from mpc.coordinator.result_files import write_result_file

            write_result_file(tmp_path, "../escape", np.zeros(4))
    finally:
        store.close()
