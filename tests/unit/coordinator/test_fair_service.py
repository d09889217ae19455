"""Job ownership, listings, per-client limits and fair scheduling of the coordinator service.

The job runner is replaced by a fake that records which job runs when and can be held at a
gate, so these tests exercise the service's bookkeeping only (no parties, no protocol).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpc.coordinator import service as service_module
from mpc.coordinator.jobs import Query
from mpc.coordinator.service import CoordinatorService, FairQueue
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.errors import (
    AccessDeniedError,
    JobNotFoundError,
    LimitExceededError,
    MpcError,
    QueryError,
)
from mpc.protocol.spec import Statistic

QUERY = Query(Statistic.COUNT, "people")


class FakeRunner:
    """Stands in for the JobRunner: records the order jobs start, holds them at a gate."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gate = threading.Event()
        self.first = threading.Event()
        self._lock = threading.Lock()

    def run(self, job_id: str, query: Query, progress: Any, *args: Any, **kw: Any) -> Any:
        with self._lock:
            self.started.append(job_id)
        self.first.set()
        if not self.gate.wait(20.0):
            raise MpcError("the test never opened the gate")
        raise MpcError("fake runner: done")  # the job fails; only the order matters here


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[CoordinatorService, JobStore, FakeRunner]] = []

    def make(**kw: Any) -> tuple[CoordinatorService, FakeRunner]:
        store = JobStore(tmp_path / f"jobs{len(made)}.sqlite")
        kw.setdefault("max_concurrent_jobs", 1)
        service = CoordinatorService({}, {}, store, job_timeout=30.0, rpc_timeout=5.0, **kw)
        runner = FakeRunner()
        service._runner = runner  # type: ignore[assignment]
        made.append((service, store, runner))
        return service, runner

    yield make
    for service, store, runner in made:
        runner.gate.set()
        service.close(wait=10.0)
        store.close()


def _wait_finished(service: CoordinatorService, job_ids: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for job_id in job_ids:
        while not service.record(job_id).state.terminal:
            assert time.monotonic() < deadline, f"{job_id} did not finish"
            time.sleep(0.01)


# --- fair scheduling ---------------------------------------------------------------------


def test_fair_queue_round_robin_across_clients_fifo_within() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        queue.put("a", f"a{i}")
    queue.put("b", "b0")
    queue.put("c", "c0")
    queue.put("b", "b1")
    assert len(queue) == 7
    taken = [queue.get(timeout=0) for _ in range(7)]
    assert taken == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert queue.get(timeout=0.01) is None  # empty: times out
    queue.put("a", "late")
    assert queue.close() == ["late"]
    assert queue.get() is None  # closed: never blocks
    with pytest.raises(MpcError, match="shutting down"):
        queue.put("a", "after close")


def test_a_backlog_of_one_client_does_not_delay_another(make_service: Any) -> None:
    service, runner = make_service()
    first = service.submit(QUERY, "alice")
    assert runner.first.wait(5.0)  # alice's first job holds the only slot
    backlog = [service.submit(QUERY, "alice") for _ in range(6)]
    bob = service.submit(QUERY, "bob")
    carol = service.submit(QUERY, "carol")
    runner.gate.set()
    _wait_finished(service, [first, *backlog, bob, carol])
    # One FIFO would run bob after all of alice's backlog; round-robin runs him next-but-one.
    assert runner.started == [first, backlog[0], bob, carol, *backlog[1:]]


# --- per-client limit on queued + running jobs ----------------------------------------------


def test_queued_jobs_per_client_are_limited(make_service: Any) -> None:
    service, runner = make_service(max_queued_per_client=3)
    jobs = [service.submit(QUERY, "alice") for _ in range(3)]
    assert service.active_jobs("alice") == 3
    with pytest.raises(LimitExceededError) as info:
        service.submit(QUERY, "alice")
    assert str(info.value) == (
        "client 'alice' has 3 jobs queued or running (max_queued_per_client = 3); "
        "wait for some to finish"
    )
    other = service.submit(QUERY, "bob")  # the limit is per client
    runner.gate.set()
    _wait_finished(service, [*jobs, other])
    deadline = time.monotonic() + 5.0
    while service.active_jobs("alice") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.active_jobs("alice") == 0
    _wait_finished(service, [service.submit(QUERY, "alice")])  # room again


def test_a_refused_query_does_not_use_up_the_limit(make_service: Any) -> None:
    service, _ = make_service(max_queued_per_client=1)
    for _ in range(3):
        with pytest.raises(QueryError):
            service.submit(Query(Statistic.SUM, "people"), "alice")  # no column: invalid
    assert service.active_jobs("alice") == 0
    service.submit(QUERY, "alice")


# --- watch streams ---------------------------------------------------------------------------


def test_watch_streams_are_capped_per_client_and_overall(make_service: Any) -> None:
    service, _ = make_service(max_watch_streams=3, max_watch_streams_per_client=2)
    with ExitStack() as stack:
        stack.enter_context(service.watch_slot("alice"))
        stack.enter_context(service.watch_slot("alice"))
        with pytest.raises(LimitExceededError, match=r"client 'alice' has 2 watch streams open"):
            stack.enter_context(service.watch_slot("alice"))
        stack.enter_context(service.watch_slot("bob"))
        assert service.watching() == 3
        with pytest.raises(LimitExceededError, match="already serves 3 watch streams"):
            stack.enter_context(service.watch_slot("carol"))
    assert service.watching() == 0  # every slot is given back
    with service.watch_slot("carol"):
        assert service.watching() == 1


def test_a_watch_ends_soon_after_its_client_goes_away(
    make_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "WATCH_POLL_SECONDS", 0.05)
    service, runner = make_service()
    job_id = service.submit(QUERY, "alice")
    assert runner.first.wait(5.0)  # running, and held there: no new events come
    gone = threading.Event()
    events = service.watch(job_id, timeout=30.0, alive=lambda: not gone.is_set())
    assert next(events).state is JobState.PENDING
    threading.Timer(0.2, gone.set).start()
    started = time.monotonic()
    rest = list(events)  # returns once alive() is false, not when the job ends
    assert time.monotonic() - started < 2.0
    assert all(not e.state.terminal for e in rest)
    assert not service.record(job_id).state.terminal


# --- ownership -------------------------------------------------------------------------------


def test_another_clients_job_looks_unknown(make_service: Any) -> None:
    service, runner = make_service()
    job_id = service.submit(QUERY, "alice")
    runner.gate.set()
    _wait_finished(service, [job_id])
    assert service.visible_record(job_id, "alice").job_id == job_id
    assert service.visible_record(job_id, "root", admin=True).job_id == job_id
    with pytest.raises(JobNotFoundError) as foreign:
        service.check_visible(job_id, "bob")
    with pytest.raises(JobNotFoundError) as unknown:
        service.check_visible("job-0000000000000000", "bob")
    assert str(foreign.value) == f"unknown job {job_id!r}"
    assert str(unknown.value) == "unknown job 'job-0000000000000000'"
    with pytest.raises(JobNotFoundError, match="unknown job"):
        service.visible_record(job_id, "bob")
    # Resuming another client's training job: the same answer, at submit time.
    resume = Query(Statistic.TRAIN, "", resume_from=job_id)
    with pytest.raises(JobNotFoundError, match="unknown job"):
        service.submit(resume, "bob")


def test_list_jobs_own_newest_first_admin_all(make_service: Any) -> None:
    service, runner = make_service()
    runner.gate.set()
    alice = []
    for _ in range(3):
        alice.append(service.submit(QUERY, "alice"))
        time.sleep(0.005)  # distinct created_at: the order is by time
    bob = service.submit(Query(Statistic.SUM, "other", columns=("x",)), "bob")
    _wait_finished(service, [*alice, bob])
    mine = service.list_jobs("alice")
    assert [j.job_id for j in mine] == alice[::-1]
    assert {(j.statistic, j.dataset, j.submitted_by) for j in mine} == {
        ("count", "people", "alice")
    }
    assert all(j.state is JobState.FAILED and j.finished_at >= j.created_at for j in mine)
    assert [j.job_id for j in service.list_jobs("alice", limit=2)] == alice[:0:-1]
    assert [j.job_id for j in service.list_jobs("bob")] == [bob]
    assert [j.job_id for j in service.list_jobs("root", admin=True)] == []  # its own
    everyone = service.list_jobs("root", admin=True, all_clients=True)
    assert [j.job_id for j in everyone] == [bob, *alice[::-1]]
    with pytest.raises(AccessDeniedError, match="admin certificate"):
        service.list_jobs("alice", all_clients=True)


def test_summaries_read_the_epsilon_spent(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    try:
        for i, privacy in enumerate([None, {"epsilon_spent": 0.25, "noise": "central"}]):
            store.create(
                JobRecord(
                    job_id=f"job-{i}",
                    state=JobState.PENDING,
                    query={"statistic": "mean", "dataset": "health", "columns": ["age"]},
                    submitted_by="alice",
                    created_at=1000.0 + i,
                )
            )
            store.succeed(f"job-{i}", ["age"], np.array([1.0]), 0.0, privacy)
        assert store.owner("job-0") == "alice"
        assert store.owner("job-9") is None
        summaries = store.summaries("alice", 10)
        assert [(s.job_id, s.epsilon_spent) for s in summaries] == [
            ("job-1", 0.25),
            ("job-0", 0.0),
        ]
        assert summaries[0].to_json()["statistic"] == "mean"
        assert store.summaries("bob", 10) == []
        assert len(store.summaries(None, 1)) == 1
    finally:
        store.close()
