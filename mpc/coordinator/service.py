"""The coordinator's job service: submit, watch, result, parties. Transport-agnostic."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mpc.config import BudgetConfig
from mpc.coordinator.jobs import JobRunner, PartyLink, Progress, Query, query_from_json
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.coordinator.training import TrainState, resume_query, train
from mpc.errors import MpcError, QueryError
from mpc.ledger import BudgetStatus, Ledger
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.spec import Statistic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    state: JobState
    stage: str
    message: str
    progress: float


@dataclass(frozen=True)
class PartyBudgets:
    party_id: str
    reachable: bool
    error: str
    budgets: tuple[BudgetStatus, ...]


@dataclass(frozen=True)
class PartyStatus:
    party_id: str
    address: str
    reachable: bool
    error: str
    datasets: tuple[DatasetInfo, ...]


class _EventLog:
    """Events of one live job, with a condition so watchers wake on each new event."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.cond = threading.Condition()

    def append(self, event: JobEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()


class CoordinatorService:
    def __init__(
        self,
        links: dict[str, PartyLink],
        addresses: dict[str, str],
        store: JobStore,
        *,
        job_timeout: float,
        rpc_timeout: float,
        max_concurrent_jobs: int,
        ledger: Ledger | None = None,
        budgets: Mapping[str, BudgetConfig] | None = None,
        colluders: int | None = None,
        min_cell_count: int = 3,
    ) -> None:
        self._ledger = ledger
        self._budgets = dict(budgets or {})
        self._links = links
        self._addresses = addresses
        self._store = store
        self._rpc_timeout = rpc_timeout
        self._jobs = ThreadPoolExecutor(max_concurrent_jobs, thread_name_prefix="job")
        self._calls = ThreadPoolExecutor(
            max(4, 2 * len(links) * max_concurrent_jobs), thread_name_prefix="party-call"
        )
        self._runner = JobRunner(
            links,
            self._calls,
            job_timeout=job_timeout,
            rpc_timeout=rpc_timeout,
            ledger=ledger,
            budgets=self._budgets,
            colluders=colluders,
            min_cell_count=min_cell_count,
        )
        self._logs: dict[str, _EventLog] = {}
        self._lock = threading.Lock()
        failed = store.fail_unfinished("the coordinator restarted while the job was running")
        if failed:
            log.warning("marked %d unfinished job(s) from a previous run as failed", failed)

    def close(self) -> None:
        self._jobs.shutdown(wait=False, cancel_futures=True)
        self._calls.shutdown(wait=False, cancel_futures=True)

    # --- jobs --------------------------------------------------------------------------

    def submit(self, query: Query, submitted_by: str) -> str:
        query.validate()
        job_id = "job-" + secrets.token_hex(8)
        record = JobRecord(
            job_id=job_id,
            state=JobState.PENDING,
            query=query.to_json(),
            submitted_by=submitted_by,
            created_at=time.time(),
        )
        self._store.create(record)
        with self._lock:
            self._logs[job_id] = _EventLog()
        self._emit(job_id, JobState.PENDING, "queued", "waiting for a job slot", 0.0)
        log.info(
            "job %s: %s on %r submitted by %r",
            job_id,
            query.statistic.value,
            query.dataset,
            submitted_by,
        )
        self._jobs.submit(self._run, job_id, query)
        return job_id

    def _emit(
        self,
        job_id: str,
        state: JobState,
        stage: str,
        message: str,
        progress: float,
        *,
        persist: bool = True,
    ) -> None:
        if persist:
            self._store.progress(job_id, state, stage, message, progress)
        with self._lock:
            events = self._logs.get(job_id)
        if events:
            events.append(JobEvent(job_id, state, stage, message, progress))

    def _run(self, job_id: str, query: Query) -> None:
        def progress(stage: str, message: str, fraction: float) -> None:
            self._emit(job_id, JobState.RUNNING, stage, message, fraction)

        try:
            if query.statistic is Statistic.TRAIN:
                self._train(job_id, query, progress)
                return
            outcome = self._runner.run(job_id, query, progress)
            self._store.set_spec(
                job_id, json.loads(outcome.spec.canonical()), list(outcome.spec.party_ids)
            )
            self._store.succeed(
                job_id,
                outcome.labels,
                outcome.values,
                outcome.tolerance,
                outcome.noise.to_json() if outcome.noise else None,
            )
            # succeed() stored this state in the same transaction as the result.
            self._emit(job_id, JobState.SUCCEEDED, "done", "result revealed", 1.0, persist=False)
            log.info("job %s: succeeded with %d parties", job_id, len(outcome.spec.party_ids))
        except MpcError as exc:
            self._store.fail(job_id, str(exc))
            self._emit(job_id, JobState.FAILED, "failed", str(exc), 1.0)
            log.warning("job %s: failed: %s", job_id, exc)
        except Exception as exc:  # never leak the text of an unexpected error: it may quote data
            self._store.fail(job_id, f"internal error ({type(exc).__name__})")
            self._emit(job_id, JobState.FAILED, "failed", "internal coordinator error", 1.0)
            log.error("job %s: internal error %s", job_id, type(exc).__name__)
        finally:
            # Keep the in-memory log a while so late watchers still see the end, then drop it.
            timer = threading.Timer(300.0, self._forget, args=(job_id,))
            timer.daemon = True  # never keeps the process alive at shutdown
            timer.start()

    def _train(self, job_id: str, query: Query, progress: Progress) -> None:
        """A training job; every completed round's model is persisted for --resume."""
        resume = None
        if query.resume_from:
            old = self.record(query.resume_from)
            state = self._store.last_round(query.resume_from)
            if old.state is not JobState.FAILED or state is None:
                raise QueryError(
                    f"job {query.resume_from} cannot be resumed: only a failed training job "
                    "with at least one completed round can"
                )
            resume = TrainState.from_json(state)
            query = resume_query(query_from_json(old.query), resume, query.resume_from)

        def checkpoint(state: TrainState) -> None:
            self._store.save_round(job_id, state.round, state.to_json())

        outcome = train(self._runner, job_id, query, progress, checkpoint, resume)
        self._store.set_spec(
            job_id, json.loads(outcome.spec.canonical()), list(outcome.spec.party_ids)
        )
        self._store.set_model(job_id, outcome.model)
        self._store.succeed(
            job_id,
            outcome.labels,
            outcome.values,
            outcome.tolerance,
            outcome.noise.to_json() if outcome.noise else None,
        )
        self._emit(job_id, JobState.SUCCEEDED, "done", "model trained", 1.0)
        log.info("job %s: trained with %d parties", job_id, len(outcome.spec.party_ids))

    def model(self, job_id: str) -> dict[str, object] | None:
        return self._store.model(job_id)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._logs.pop(job_id, None)

    def watch(self, job_id: str, timeout: float = 3600.0) -> Iterator[JobEvent]:
        with self._lock:
            events = self._logs.get(job_id)
        if events is None:
            record = self.record(job_id)
            yield JobEvent(
                job_id, record.state, record.stage, record.error or record.message, record.progress
            )
            return
        index = 0
        end = time.monotonic() + timeout
        while True:
            with events.cond:
                while index >= len(events.events):
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        return
                    events.cond.wait(min(remaining, 1.0))
                batch = events.events[index:]
                index = len(events.events)
            for event in batch:
                yield event
                if event.state.terminal:
                    return

    def record(self, job_id: str) -> JobRecord:
        record = self._store.get(job_id)
        if record is None:
            raise QueryError(f"unknown job {job_id!r}")
        return record

    # --- parties -------------------------------------------------------------------------

    def parties(self) -> list[PartyStatus]:
        def probe(pid: str) -> PartyStatus:
            try:
                datasets = tuple(self._links[pid].describe(self._rpc_timeout))
                return PartyStatus(pid, self._addresses[pid], True, "", datasets)
            except MpcError as exc:
                return PartyStatus(pid, self._addresses[pid], False, str(exc), ())

        futures = [self._calls.submit(probe, pid) for pid in sorted(self._links)]
        return [f.result() for f in futures]

    def budgets(self) -> tuple[list[BudgetStatus], list[PartyBudgets]]:
        """The coordinator's ledger per dataset, and every party's own ledger."""
        mine: list[BudgetStatus] = []
        if self._ledger is not None:
            names = sorted(set(self._budgets) | set(self._ledger.datasets()))
            for name in names:
                config = self._budgets.get(name)
                mine.append(self._ledger.status(name, config.budget() if config else None))

        def probe(pid: str) -> PartyBudgets:
            link = self._links[pid]
            try:
                return PartyBudgets(pid, True, "", tuple(link.ledger(self._rpc_timeout)))
            except MpcError as exc:
                return PartyBudgets(pid, False, str(exc), ())

        futures = [self._calls.submit(probe, pid) for pid in sorted(self._links)]
        return mine, [f.result() for f in futures]
