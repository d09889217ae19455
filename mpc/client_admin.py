"""The client's listing and admin calls: its jobs (every client's with an admin certificate),
privacy budgets and the parties' status.

A mixin of :class:`mpc.client.Client` (which sets the attributes declared below).
"""

from __future__ import annotations

import grpc

from mpc.budget_status import BudgetStatus
from mpc.coordinator.events import PartyBudgets, PartyStatus
from mpc.coordinator.store import JobState, JobSummary
from mpc.errors import QueryError
from mpc.proto.v1 import coordinator_pb2, coordinator_pb2_grpc
from mpc.transport import convert
from mpc.transport.errors import from_rpc_error

_STATE_FROM_PROTO = {
    coordinator_pb2.JOB_STATE_PENDING: JobState.PENDING,
    coordinator_pb2.JOB_STATE_RUNNING: JobState.RUNNING,
    coordinator_pb2.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    coordinator_pb2.JOB_STATE_FAILED: JobState.FAILED,
}


class AdminMixin:
    """Listings and status calls (the host class sets these attributes)."""

    coordinator: str
    timeout: float
    _stub: coordinator_pb2_grpc.CoordinatorStub

    def jobs(self, limit: int = 50, all_clients: bool = False) -> list[JobSummary]:
        """This client's jobs, newest first: state, statistic, dataset, times, epsilon spent.

        ``all_clients`` lists every client's jobs; it needs an admin certificate.
        """
        if limit < 1:
            raise QueryError(f"limit must be at least 1, not {limit}")
        try:
            response = self._stub.ListJobs(
                coordinator_pb2.ListJobsRequest(limit=limit, all_clients=all_clients),
                timeout=min(60.0, self.timeout),
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return [
            JobSummary(
                job_id=j.job_id,
                state=_STATE_FROM_PROTO.get(j.state, JobState.PENDING),
                statistic=j.statistic,
                dataset=j.dataset,
                submitted_by=j.submitted_by,
                created_at=j.created_at,
                finished_at=j.finished_at,
                epsilon_spent=j.epsilon_spent,
                error=j.error,
            )
            for j in response.jobs
        ]

    def budgets(self) -> tuple[list[BudgetStatus], list[PartyBudgets]]:
        """Spent and remaining privacy budget: the coordinator's ledger and each party's."""
        try:
            response = self._stub.GetBudgets(
                coordinator_pb2.GetBudgetsRequest(), timeout=min(60.0, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return (
            [convert.budget_from_proto(b) for b in response.coordinator],
            [
                PartyBudgets(
                    party_id=p.party_id,
                    reachable=p.reachable,
                    error=p.error,
                    budgets=tuple(convert.budget_from_proto(b) for b in p.budgets),
                )
                for p in response.parties
            ],
        )

    def parties(self) -> list[PartyStatus]:
        try:
            response = self._stub.ListParties(
                coordinator_pb2.ListPartiesRequest(), timeout=min(60.0, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return [
            PartyStatus(
                party_id=p.party_id,
                address=p.address,
                reachable=p.reachable,
                error=p.error,
                datasets=tuple(convert.dataset_from_proto(d) for d in p.datasets),
            )
            for p in response.parties
        ]


__all__ = ["AdminMixin"]
