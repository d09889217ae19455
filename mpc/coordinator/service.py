"""The coordinator's job service: submit, watch, result, parties. Transport-agnostic."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from mpc.config import BudgetConfig
from mpc.coordinator.events import FairQueue as FairQueue
from mpc.coordinator.events import JobEvent as JobEvent
from mpc.coordinator.events import PartyBudgets as PartyBudgets
from mpc.coordinator.events import PartyStatus as PartyStatus
from mpc.coordinator.events import _EventLog
from mpc.coordinator.jobs import JobRunner, Outcome, PartyLink, Progress, Query, query_from_json
from mpc.coordinator.service_views import DEFAULT_LIST_LIMIT as DEFAULT_LIST_LIMIT
from mpc.coordinator.service_views import MAX_LIST_LIMIT as MAX_LIST_LIMIT
from mpc.coordinator.service_views import MAX_WATCH_STREAMS as MAX_WATCH_STREAMS
from mpc.coordinator.service_views import (
    MAX_WATCH_STREAMS_PER_CLIENT as MAX_WATCH_STREAMS_PER_CLIENT,
)
from mpc.coordinator.service_views import WATCH_POLL_SECONDS as WATCH_POLL_SECONDS
from mpc.coordinator.service_views import ServiceViewsMixin
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.coordinator.training import TrainOutcome, TrainState, resume_query, train
from mpc.errors import LimitExceededError, MpcError, QueryError, TransportError
from mpc.ledger import Ledger
from mpc.protocol.spec import ClientAuth, Statistic

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A running job's progress is written to the job store at most this often (watchers get
#: every event as it happens).
PROGRESS_PERSIST_SECONDS = 1.0


class CoordinatorService(ServiceViewsMixin):
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
        max_queued_per_client: int = 50,
        max_watch_streams: int = MAX_WATCH_STREAMS,
        max_watch_streams_per_client: int = MAX_WATCH_STREAMS_PER_CLIENT,
    ) -> None:
        self._ledger = ledger
        self._budgets = dict(budgets or {})
        self._links = links
        self._addresses = addresses
        self._store = store
        self._rpc_timeout = rpc_timeout
        self._max_queued = max_queued_per_client
        self._max_watch = max_watch_streams
        self._max_watch_per_client = max_watch_streams_per_client
        self._queue: FairQueue[tuple[str, Query, str]] = FairQueue()
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
        self._auth: dict[str, ClientAuth] = {}
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}  # per client: its jobs queued or running
        self._watching: dict[str, int] = {}  # per client: its open watch streams
        # Per live job: its record as submitted (no result), to build the revealed record.
        self._submitted: dict[str, JobRecord] = {}
        # Revealed results (and training models) not yet durably stored: watchers and
        # GetResult are served from here until the job store has them.
        self._revealed: dict[str, tuple[JobRecord, dict[str, object] | None]] = {}
        failed = store.fail_unfinished("the coordinator restarted while the job was running")
        if failed:
            log.warning("marked %d unfinished job(s) from a previous run as failed", failed)
        # Daemon workers: a job still running when the process exits is marked failed at the
        # next start (fail_unfinished), like one cut off by a crash.
        self._workers = [
            threading.Thread(target=self._work, name=f"job-{i}", daemon=True)
            for i in range(max_concurrent_jobs)
        ]
        for worker in self._workers:
            worker.start()

    def close(self, wait: float = 0.0) -> None:
        """Stop starting jobs; queued ones stay pending (failed at the next start). Waits up to
        ``wait`` seconds for running jobs to end."""
        dropped = self._queue.close()
        if dropped:
            log.warning("shutting down with %d job(s) still queued", len(dropped))
        deadline = time.monotonic() + wait
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._calls.shutdown(wait=False, cancel_futures=True)

    def close_stores(self) -> None:
        """Close the job store and ledger (checkpointing their write-ahead log); after
        close(), when the process is about to exit."""
        self._store.close()
        if self._ledger is not None:
            self._ledger.close()

    # --- jobs --------------------------------------------------------------------------

    def submit(
        self,
        query: Query,
        submitted_by: str,
        *,
        admin: bool = False,
        client: ClientAuth | None = None,
    ) -> str:
        """Queue a job for ``submitted_by`` (a certificate name); ``admin`` callers may resume
        another client's training job. Raises :class:`LimitExceededError` when the client
        already has ``max_queued_per_client`` jobs queued or running."""
        query.validate()
        if self._queue.closed:
            raise TransportError("the coordinator is shutting down; submit the job again")
        if query.resume_from:
            self.check_visible(query.resume_from, submitted_by, admin=admin)
        with self._lock:
            held = self._active.get(submitted_by, 0)
            if held >= self._max_queued:
                raise LimitExceededError(
                    f"client {submitted_by!r} has {held} jobs queued or running "
                    f"(max_queued_per_client = {self._max_queued}); wait for some to finish"
                )
            self._active[submitted_by] = held + 1
        job_id = "job-" + secrets.token_hex(8)
        try:
            record = JobRecord(
                job_id=job_id,
                state=JobState.PENDING,
                query=query.to_json(),
                submitted_by=submitted_by,
                created_at=time.time(),
                stage="queued",
                message="waiting for a job slot",
            )
            self._store.create(record)  # durable, with its first event, in one write
            with self._lock:
                self._logs[job_id] = _EventLog()
                self._submitted[job_id] = record
                if client is not None:
                    # The client's signed query goes to every party with the job's spec.
                    self._auth[job_id] = client
            self._emit(
                job_id, JobState.PENDING, "queued", "waiting for a job slot", 0.0, persist=False
            )
            log.info(
                "job %s: %s on %r submitted by %r",
                job_id,
                query.statistic.value,
                query.dataset,
                submitted_by,
            )
            self._queue.put(submitted_by, (job_id, query, submitted_by))
        except BaseException as exc:
            self._release(submitted_by)
            with self._lock:
                self._submitted.pop(job_id, None)
            self._take_auth(job_id)  # it will never run: drop the signed query it held
            if isinstance(exc, MpcError) and self._store.owner(job_id) is not None:
                self._fail(job_id, f"not queued: {exc}", str(exc))  # never pending forever
            raise
        return job_id

    def _release(self, client: str) -> None:
        with self._lock:
            held = self._active.get(client, 0) - 1
            if held > 0:
                self._active[client] = held
            else:
                self._active.pop(client, None)

    def active_jobs(self, client: str) -> int:
        """The client's jobs queued or running."""
        with self._lock:
            return self._active.get(client, 0)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job_id, query, owner = item
            try:
                self._run(job_id, query)
            finally:
                self._release(owner)

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

    def _fail(self, job_id: str, error: str, message: str) -> None:
        """Mark a job failed; watchers learn it even when the job store cannot be written."""
        try:
            self._store.fail(job_id, error)
        except MpcError as exc:  # e.g. disk full: the next start marks the job failed
            log.error("job %s: cannot record its failure: %s", job_id, exc)
        self._emit(job_id, JobState.FAILED, "failed", message, 1.0, persist=False)

    def _take_auth(self, job_id: str) -> ClientAuth | None:
        with self._lock:
            return self._auth.pop(job_id, None)

    def _run(self, job_id: str, query: Query) -> None:
        client = self._take_auth(job_id)

        persisted = [time.monotonic()]  # when a progress row was last written

        def progress(stage: str, message: str, fraction: float) -> None:
            # Watchers get every stage at once (and GetJob reads a live job's latest event,
            # :meth:`record`); the job store gets one row a second at most, none for a job
            # shorter than that: a query's stages take milliseconds, and each durable row
            # would cost an fsync on its critical path.
            now = time.monotonic()
            persist = now - persisted[0] >= PROGRESS_PERSIST_SECONDS
            if persist:
                persisted[0] = now
            self._emit(job_id, JobState.RUNNING, stage, message, fraction, persist=persist)

        try:
            if query.statistic is Statistic.TRAIN:
                self._train(job_id, query, progress, client)
                return
            outcome = self._runner.run(job_id, query, progress, client)
            self._reveal(job_id, outcome, None, "result revealed")
            log.info("job %s: succeeded with %d parties", job_id, len(outcome.spec.party_ids))
        except MpcError as exc:
            self._fail(job_id, str(exc), str(exc))
            log.warning("job %s: failed: %s", job_id, exc)
        except Exception as exc:  # never leak the text of an unexpected error: it may quote data
            self._fail(
                job_id, f"internal error ({type(exc).__name__})", "internal coordinator error"
            )
            log.error("job %s: internal error %s", job_id, type(exc).__name__)
        finally:
            # Keep the in-memory log a while so late watchers still see the end, then drop it.
            timer = threading.Timer(300.0, self._forget, args=(job_id,))
            timer.daemon = True  # never keeps the process alive at shutdown
            timer.start()

    def _train(
        self, job_id: str, query: Query, progress: Progress, client: ClientAuth | None = None
    ) -> None:
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

        outcome = train(self._runner, job_id, query, progress, checkpoint, resume, client)
        self._reveal(job_id, outcome, outcome.model, "model trained")
        log.info("job %s: trained with %d parties", job_id, len(outcome.spec.party_ids))

    def _reveal(
        self,
        job_id: str,
        outcome: Outcome | TrainOutcome,
        model: dict[str, object] | None,
        message: str,
    ) -> None:
        """Publish the revealed result to watchers at once, from memory; then store it.

        Watchers (and GetResult, via :meth:`record`) are served from memory until the durable
        write is done, so it never sits between the reveal and the client. A failed write is
        logged: the client already has its result (the next start marks the job failed).
        """
        spec = json.loads(outcome.spec.canonical())
        parties = list(outcome.spec.party_ids)
        privacy = outcome.noise.to_json() if outcome.noise else None
        finished = time.time()
        with self._lock:
            submitted = self._submitted.get(job_id)
        if submitted is None:  # not submitted through this service: read what was stored
            submitted = self.record(job_id)
        record = replace(
            submitted,
            state=JobState.SUCCEEDED,
            stage="done",
            message=message,
            progress=1.0,
            spec=spec,
            parties=parties,
            labels=list(outcome.labels),
            values=outcome.values,
            tolerance=outcome.tolerance,
            error="",
            finished_at=finished,
            privacy=privacy,
        )
        with self._lock:
            self._revealed[job_id] = (record, model)
        self._emit(job_id, JobState.SUCCEEDED, "done", message, 1.0, persist=False)
        try:
            self._store.set_spec(job_id, spec, parties)
            if model is not None:
                self._store.set_model(job_id, model)
            # The state, result and message in one transaction.
            self._store.succeed(
                job_id,
                record.labels,
                outcome.values,
                outcome.tolerance,
                privacy,
                finished_at=finished,
                message=message,
            )
        except Exception as exc:  # the store's own errors quote no data
            what = str(exc) if isinstance(exc, MpcError) else type(exc).__name__
            log.error("job %s: result revealed but not stored: %s", job_id, what)
            return  # served from memory until the job is forgotten
        with self._lock:
            self._revealed.pop(job_id, None)

    def model(self, job_id: str) -> dict[str, object] | None:
        with self._lock:
            held = self._revealed.get(job_id)
        if held is not None:
            return held[1]
        return self._store.model(job_id)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._logs.pop(job_id, None)
            self._submitted.pop(job_id, None)
            self._revealed.pop(job_id, None)
