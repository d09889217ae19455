"""Job events, the public party status records and the per-client fair queue of the
coordinator's job service (:mod:`mpc.coordinator.service`)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from mpc.budget_status import BudgetStatus
from mpc.coordinator.store import JobState
from mpc.errors import TransportError
from mpc.protocol.schema import DatasetInfo

T = TypeVar("T")


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


class FairQueue(Generic[T]):
    """Work waiting for a slot: FIFO within one client, round-robin across clients.

    A client with hundreds of queued jobs delays another client's job by at most one job per
    worker, not by its whole backlog (one FIFO queue would make the other wait for all of it).
    """

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, client: str, item: T) -> None:
        with self._cond:
            if self._closed:
                raise TransportError("the coordinator is shutting down; submit the job again")
            self._queues.setdefault(client, deque()).append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The next item: the oldest of the client whose turn it is. None once closed, or
        after ``timeout`` seconds without work."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queues and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            client, queue = next(iter(self._queues.items()))
            item = queue.popleft()
            if queue:
                self._queues.move_to_end(client)  # its next job waits for everyone else's turn
            else:
                del self._queues[client]
            return item

    def close(self) -> list[T]:
        """Stop handing out work; returns what was still queued."""
        with self._cond:
            self._closed = True
            dropped = [item for queue in self._queues.values() for item in queue]
            self._queues.clear()
            self._cond.notify_all()
        return dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return sum(len(queue) for queue in self._queues.values())


__all__ = ["FairQueue", "JobEvent", "PartyBudgets", "PartyStatus"]
