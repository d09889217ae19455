"""The result on the watch stream: published from memory before the durable write, chunked
on the wire, read by the client without a GetResult call (and GetResult as the fallback).

The job runner is a fake returning a fixed outcome, and the job store can be held inside its
durable write, so these tests see the order of reveal and write (no parties, no protocol).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from mpc.client import Client
from mpc.coordinator.jobs import Outcome, Query
from mpc.coordinator.service import CoordinatorService
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.errors import JobFailedError, MpcError
from mpc.proto.v1 import coordinator_pb2
from mpc.protocol.spec import Statistic
from mpc.transport import convert
from mpc.transport.coordinator_server import result_events, result_header

QUERY = Query(Statistic.VECTOR_SUM, "v")
BIG = 1_000_000
MIB = 1 << 20


class FakeSpec:
    party_ids = ("a", "b", "c")

    def canonical(self) -> str:
        return json.dumps({"statistic": "vector_sum", "frac_bits": 20, "columns": []})


class FakeRunner:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def run(self, job_id: str, query: Query, progress: Any, *args: Any) -> Outcome:
        progress("round", "summing", 0.5)
        labels = ["value"]
        return Outcome(FakeSpec(), labels, self.values, 1e-6)  # type: ignore[arg-type]


class GatedStore(JobStore):
    """A job store whose durable write of a result waits at a gate (or fails)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.fail_write = False

    def succeed(self, *args: Any, **kw: Any) -> None:
        self.writing.set()
        assert self.gate.wait(20.0), "the test never opened the gate"
        if self.fail_write:
            raise MpcError("disk full (test)")
        super().succeed(*args, **kw)


@pytest.fixture
def values() -> np.ndarray:
    return np.random.default_rng(7).normal(size=BIG)


@pytest.fixture
def service(tmp_path: Path, values: np.ndarray) -> Iterator[tuple[CoordinatorService, GatedStore]]:
    store = GatedStore(tmp_path / "jobs.sqlite")
    service = CoordinatorService(
        {}, {}, store, job_timeout=30, rpc_timeout=5, max_concurrent_jobs=1
    )
    service._runner = FakeRunner(values)  # type: ignore[assignment]
    yield service, store
    store.gate.set()
    service.close(wait=10.0)
    store.close()


def _terminal(service: CoordinatorService, job_id: str) -> Any:
    events = list(service.watch(job_id, timeout=20.0))
    assert events[-1].state is JobState.SUCCEEDED
    return events[-1]


def test_watchers_get_the_result_before_the_durable_write(
    service: tuple[CoordinatorService, GatedStore], values: np.ndarray, tmp_path: Path
) -> None:
    svc, store = service
    job_id = svc.submit(QUERY, "alice")
    _terminal(svc, job_id)  # ends while the write is still held at the gate
    assert store.writing.wait(10.0) and not store.gate.is_set()  # the write is held
    # Not stored yet: the store still has the job as submitted (short jobs write no progress).
    assert store.get(job_id).state is JobState.PENDING  # type: ignore[union-attr]
    # GetResult before the write: served from memory.
    held = svc.visible_record(job_id, "alice")
    assert held.state is JobState.SUCCEEDED
    np.testing.assert_array_equal(held.values, values)  # type: ignore[arg-type]
    store.gate.set()
    deadline = time.monotonic() + 20
    while store.get(job_id).state is not JobState.SUCCEEDED:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with svc._lock:
        assert job_id not in svc._revealed  # memory released once stored
    stored = svc.record(job_id)
    np.testing.assert_array_equal(stored.values, values)  # type: ignore[arg-type]
    assert stored.finished_at == held.finished_at and stored.labels == held.labels
    # After a restart: a fresh store on the same file has it.
    again = JobStore(tmp_path / "jobs.sqlite")
    try:
        record = again.get(job_id)
        assert record is not None and record.state is JobState.SUCCEEDED
        np.testing.assert_array_equal(record.values, values)  # type: ignore[arg-type]
    finally:
        again.close()


def test_a_failed_durable_write_is_logged_and_the_result_still_served(
    service: tuple[CoordinatorService, GatedStore],
    values: np.ndarray,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, store = service
    store.fail_write = True
    store.gate.set()
    job_id = svc.submit(QUERY, "alice")
    _terminal(svc, job_id)
    deadline = time.monotonic() + 20
    while "not stored" not in caplog.text:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    record = svc.record(job_id)
    assert record.state is JobState.SUCCEEDED  # from memory: never a FAILED after SUCCEEDED
    np.testing.assert_array_equal(record.values, values)  # type: ignore[arg-type]
    assert all(e.state is not JobState.FAILED for e in svc.watch(job_id, timeout=1.0))


def _record(values: np.ndarray) -> JobRecord:
    return JobRecord(
        job_id="job-1",
        state=JobState.SUCCEEDED,
        query={"statistic": "vector_sum", "dataset": "v"},
        submitted_by="alice",
        created_at=1.0,
        spec={"statistic": "vector_sum", "frac_bits": 20, "columns": []},
        parties=["a", "b", "c"],
        labels=["value"],
        values=values,
        tolerance=1e-6,
        finished_at=2.0,
    )


def _wire_events(values: np.ndarray) -> list[coordinator_pb2.JobEvent]:
    running = coordinator_pb2.JobEvent(
        job_id="job-1", state=coordinator_pb2.JOB_STATE_RUNNING, stage="round", progress=0.5
    )
    terminal = coordinator_pb2.JobEvent(
        job_id="job-1", state=coordinator_pb2.JOB_STATE_SUCCEEDED, stage="done", progress=1.0
    )
    return [running, *result_events(terminal, _record(values), lambda _: None)]


def test_large_results_travel_in_chunks_of_at_most_a_mebibyte(values: np.ndarray) -> None:
    events = _wire_events(values)
    first = events[1]
    assert first.HasField("result") and first.result.length == BIG
    rest = events[2:]
    assert len(rest) >= 7 and not any(e.HasField("result") for e in rest)
    assert all(0 < len(e.values) <= MIB for e in events[1:])
    assert all(e.ByteSize() <= MIB + 1024 for e in rest)
    joined = np.frombuffer(b"".join(e.values for e in events[1:]), dtype="<f8")
    np.testing.assert_array_equal(joined, values)
    # The same header as GetResult's.
    assert first.result == result_header(_record(values), lambda _: None)


class FakeStub:
    def __init__(self, events: list[coordinator_pb2.JobEvent], chunks: list[Any]) -> None:
        self.events = events
        self.chunks = chunks
        self.get_result_calls = 0

    def WatchJob(self, request: Any, **kw: Any) -> Iterator[coordinator_pb2.JobEvent]:
        return iter(self.events)

    def GetResult(self, request: Any, **kw: Any) -> Iterator[Any]:
        self.get_result_calls += 1
        return iter(self.chunks)


def _client(stub: FakeStub) -> Client:
    client = Client.__new__(Client)
    client.coordinator = "test"
    client.timeout = 10.0
    client._stub = stub
    return client


def test_the_client_reads_the_result_from_the_stream_without_get_result(
    values: np.ndarray,
) -> None:
    stub = FakeStub(_wire_events(values), [])
    client = _client(stub)
    seen: list[Any] = []
    result = client.follow("job-1", seen.append)
    assert stub.get_result_calls == 0
    np.testing.assert_array_equal(result.values, values)
    assert result.labels == ("value",) and result.parties == ("a", "b", "c")
    # on_event sees each job event once, not the result's further chunks.
    assert [e.state for e in seen] == [JobState.RUNNING, JobState.SUCCEEDED]
    assert [e.state for e in client.watch("job-1")] == [JobState.RUNNING, JobState.SUCCEEDED]


def test_the_client_falls_back_to_get_result_without_a_result_on_the_stream() -> None:
    small = np.array([1.5, -2.0, 3.25])
    header = result_header(_record(small), lambda _: None)
    chunks = [coordinator_pb2.ResultChunk(header=header)] + [
        coordinator_pb2.ResultChunk(values=c) for c in convert.float_chunks(small)
    ]
    old = [  # an older coordinator: no result fields on the terminal event
        coordinator_pb2.JobEvent(
            job_id="job-1", state=coordinator_pb2.JOB_STATE_SUCCEEDED, stage="done"
        )
    ]
    stub = FakeStub(old, chunks)
    result = _client(stub).follow("job-1")
    assert stub.get_result_calls == 1
    np.testing.assert_array_equal(result.values, small)


def test_a_failed_job_raises_from_get_result() -> None:
    failed = _record(np.zeros(0))
    failed.state, failed.values, failed.error = JobState.FAILED, None, "parties unreachable"
    header = result_header(failed, lambda _: None)
    stub = FakeStub(
        [coordinator_pb2.JobEvent(job_id="job-1", state=coordinator_pb2.JOB_STATE_FAILED)],
        [coordinator_pb2.ResultChunk(header=header)],
    )
    with pytest.raises(JobFailedError, match="parties unreachable"):
        _client(stub).follow("job-1")
    assert stub.get_result_calls == 1


def test_a_running_job_reports_its_latest_stage_without_a_progress_write(
    service: tuple[CoordinatorService, GatedStore], values: np.ndarray
) -> None:
    """Progress reaches the job store at most once a second; GetJob reads it from memory."""
    svc, store = service
    inside, release = threading.Event(), threading.Event()

    class SlowRunner(FakeRunner):
        def run(self, job_id: str, query: Query, progress: Any, *args: Any) -> Outcome:
            progress("round", "summing", 0.5)
            inside.set()
            assert release.wait(20.0)
            return super().run(job_id, query, progress, *args)

    svc._runner = SlowRunner(values)  # type: ignore[assignment]
    job_id = svc.submit(QUERY, "alice")
    assert inside.wait(20.0)
    stored = store.get(job_id)
    assert stored is not None and (stored.state, stored.stage) == (JobState.PENDING, "queued")
    live = svc.visible_record(job_id, "alice")
    assert (live.state, live.stage, live.progress) == (JobState.RUNNING, "round", 0.5)
    release.set()
    store.gate.set()
    assert _terminal(svc, job_id).state is JobState.SUCCEEDED


class Unimplemented(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNIMPLEMENTED

    def details(self) -> str:
        return "Method not found!"


class RunStub(FakeStub):
    """A coordinator with RunJob (submit and watch in one call), or an older one without."""

    def __init__(self, events: list[coordinator_pb2.JobEvent], has_run: bool) -> None:
        super().__init__(events, [])
        self.has_run = has_run
        self.calls: list[str] = []

    def RunJob(self, request: Any, **kw: Any) -> Iterator[coordinator_pb2.JobEvent]:
        self.calls.append("RunJob")
        if not self.has_run:
            raise Unimplemented()
        return iter(self.events)

    def SubmitJob(self, request: Any, **kw: Any) -> Any:
        self.calls.append("SubmitJob")
        return coordinator_pb2.SubmitJobResponse(job_id="job-1")

    def WatchJob(self, request: Any, **kw: Any) -> Iterator[coordinator_pb2.JobEvent]:
        self.calls.append("WatchJob")
        return super().WatchJob(request, **kw)


@pytest.mark.parametrize("has_run", [True, False], ids=["run-job", "older-coordinator"])
def test_a_query_is_one_call_to_the_coordinator(values: np.ndarray, has_run: bool) -> None:
    stub = RunStub(_wire_events(values), has_run)
    client = _client(stub)  # type: ignore[arg-type]
    client._signed_request = lambda query: coordinator_pb2.SubmitJobRequest()  # type: ignore[method-assign]
    seen: list[Any] = []
    result = client._run(coordinator_pb2.Query(), seen.append)
    np.testing.assert_array_equal(result.values, values)
    assert [e.state for e in seen] == [JobState.RUNNING, JobState.SUCCEEDED]
    expected = ["RunJob"] if has_run else ["RunJob", "SubmitJob", "WatchJob"]
    assert stub.calls == expected and stub.get_result_calls == 0
