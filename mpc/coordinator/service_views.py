"""The coordinator service's read side: watch streams (capped per client and in all), job
records and their ownership, job listings, and the parties' status and budgets.

A mixin of :class:`mpc.coordinator.service.CoordinatorService` (which sets the attributes
declared below). Transport-agnostic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

from mpc.config import BudgetConfig
from mpc.coordinator.events import JobEvent, PartyBudgets, PartyStatus, _EventLog
from mpc.coordinator.jobs import PartyLink
from mpc.coordinator.store import JobRecord, JobState, JobStore, JobSummary
from mpc.errors import AccessDeniedError, JobNotFoundError, LimitExceededError, MpcError
from mpc.ledger import BudgetStatus, Ledger

#: ListJobs: jobs listed when the caller gives no limit, and the most it may ask for.
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
#: Watch streams each hold a server thread while open; beyond these caps they are refused
#: (RESOURCE_EXHAUSTED), so watchers can never take the threads other calls need.
MAX_WATCH_STREAMS = 128
MAX_WATCH_STREAMS_PER_CLIENT = 32
#: How often an idle watch stream wakes to check that its client is still there.
WATCH_POLL_SECONDS = 1.0


class ServiceViewsMixin:
    """Watching, records, listings and party status (the host class sets these attributes)."""

    _lock: threading.Lock
    _watching: dict[str, int]
    _max_watch: int
    _max_watch_per_client: int
    _logs: dict[str, _EventLog]
    _revealed: dict[str, tuple[JobRecord, dict[str, object] | None]]
    _store: JobStore
    _links: dict[str, PartyLink]
    _addresses: dict[str, str]
    _calls: ThreadPoolExecutor
    _rpc_timeout: float
    _ledger: Ledger | None
    _budgets: dict[str, BudgetConfig]

    @contextmanager
    def watch_slot(self, client: str) -> Iterator[None]:
        """Hold one of the limited watch streams for ``client`` while the block runs."""
        with self._lock:
            total = sum(self._watching.values())
            if total >= self._max_watch:
                raise LimitExceededError(
                    f"the coordinator already serves {total} watch streams (its maximum); "
                    "retry shortly, or poll the job with GetResult"
                )
            mine = self._watching.get(client, 0)
            if mine >= self._max_watch_per_client:
                raise LimitExceededError(
                    f"client {client!r} has {mine} watch streams open (at most "
                    f"{self._max_watch_per_client} per client); close some first, or poll "
                    "the job with GetResult"
                )
            self._watching[client] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._watching.get(client, 0) - 1
                if left > 0:
                    self._watching[client] = left
                else:
                    self._watching.pop(client, None)

    def watching(self) -> int:
        """Watch streams open now (all clients)."""
        with self._lock:
            return sum(self._watching.values())

    def watch(
        self,
        job_id: str,
        timeout: float = 3600.0,
        alive: Callable[[], bool] | None = None,
    ) -> Iterator[JobEvent]:
        """The job's events until it ends, ``timeout`` passes, or ``alive()`` turns false
        (checked at least every :data:`WATCH_POLL_SECONDS`, so a stream whose client went
        away ends soon instead of holding its thread until the job ends)."""
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
                    if remaining <= 0 or (alive is not None and not alive()):
                        return
                    events.cond.wait(min(remaining, WATCH_POLL_SECONDS))
                batch = events.events[index:]
                index = len(events.events)
            for event in batch:
                yield event
                if event.state.terminal:
                    return

    def record(self, job_id: str) -> JobRecord:
        """The job's record: a revealed result from memory until it is durably stored."""
        with self._lock:
            held = self._revealed.get(job_id)
        if held is not None:
            return held[0]
        record = self._store.get(job_id)
        if record is None:
            raise JobNotFoundError(f"unknown job {job_id!r}")
        with self._lock:
            events = self._logs.get(job_id)
        latest = events.events[-1] if events is not None and events.events else None
        if latest is not None and record.state in (JobState.PENDING, JobState.RUNNING):
            # A live job's progress is in memory first (the store gets it at most once a
            # second): report its latest event.
            record = replace(
                record,
                state=latest.state,
                stage=latest.stage,
                message=latest.message,
                progress=latest.progress,
            )
        return record

    # --- ownership: a client sees only its own jobs; an admin sees every job ---------------

    def check_visible(self, job_id: str, caller: str, *, admin: bool = False) -> None:
        """Raise :class:`JobNotFoundError` unless ``caller`` may see the job.

        Another client's job fails exactly like an unknown id (same error, same text, the
        same single small query), so the answer does not tell that the job exists.
        """
        owner = self._store.owner(job_id)
        if owner is None or not (admin or owner == caller):
            raise JobNotFoundError(f"unknown job {job_id!r}")

    def visible_record(self, job_id: str, caller: str, *, admin: bool = False) -> JobRecord:
        """The job's record if ``caller`` may see it (see :meth:`check_visible`)."""
        self.check_visible(job_id, caller, admin=admin)
        return self.record(job_id)

    def list_jobs(
        self, caller: str, *, admin: bool = False, limit: int = 0, all_clients: bool = False
    ) -> list[JobSummary]:
        """The caller's jobs newest first; an admin with ``all_clients``: everyone's."""
        if all_clients and not admin:
            raise AccessDeniedError(
                f"{caller!r} may list only its own jobs; every client's needs an admin certificate"
            )
        limit = DEFAULT_LIST_LIMIT if limit <= 0 else min(limit, MAX_LIST_LIMIT)
        return self._store.summaries(None if all_clients else caller, limit)

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


__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "MAX_WATCH_STREAMS",
    "MAX_WATCH_STREAMS_PER_CLIENT",
    "WATCH_POLL_SECONDS",
    "ServiceViewsMixin",
]
