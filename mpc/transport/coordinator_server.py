"""The Coordinator gRPC servicer (clients only), and the coordinator process wiring."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from mpc.config import CoordinatorConfig
from mpc.coordinator.jobs import PartyLink, tolerances_from_spec_json
from mpc.coordinator.service import MAX_WATCH_STREAMS, CoordinatorService
from mpc.coordinator.store import JobRecord, JobState, JobStore
from mpc.errors import AccessDeniedError, ConfigError, QueryError
from mpc.identity import Role, watch_revocations
from mpc.ledger import Ledger
from mpc.proto.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from mpc.protocol.query import Query, verify_client
from mpc.protocol.spec import ClientAuth
from mpc.sharing import CHUNK_WORDS
from mpc.transport import convert
from mpc.transport.errors import handle_errors, handle_stream_errors
from mpc.transport.party_client import GrpcPartyLink
from mpc.transport.server import RunningServer, serve_until_signalled
from mpc.transport.tls import Peer, require_role

log = logging.getLogger(__name__)

#: Roles that may use the client API: an admin is a client that may also see every job.
_CLIENT_ROLES = (Role.CLIENT, Role.ADMIN)
#: Server threads beyond the most watch streams the service allows: unary calls (submit,
#: results, listings, health) always find a free thread however many streams are open.
_SPARE_WORKERS = 64


def _is_admin(peer: Peer) -> bool:
    return peer.role == Role.ADMIN.value


SERVICE_NAME = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name

_STATE_TO_PROTO = {
    JobState.PENDING: coordinator_pb2.JOB_STATE_PENDING,
    JobState.RUNNING: coordinator_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: coordinator_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: coordinator_pb2.JOB_STATE_FAILED,
}


def _privacy_to_proto(
    privacy: dict[str, Any] | None, labels: list[str]
) -> coordinator_pb2.Privacy | None:
    if not privacy:
        return None
    return coordinator_pb2.Privacy(
        noise=str(privacy["noise"]),
        epsilon=float(privacy["epsilon"]),
        delta=float(privacy["delta"]),
        epsilon_spent=float(privacy["epsilon_spent"]),
        rho_spent=float(privacy["rho_spent"]),
        values=[
            coordinator_pb2.NoiseInfo(
                label=label, sigma=sigma, error_bound_95=bound, error_kind=kind
            )
            for label, sigma, bound, kind in zip(
                labels,
                privacy["sigma"],
                privacy["error_bound_95"],
                privacy.get("error_kind") or [""] * len(labels),
                strict=True,
            )
        ],
    )


def result_header(
    record: JobRecord, model: Callable[[str], dict[str, Any] | None]
) -> coordinator_pb2.ResultHeader:
    """A job's result header (GetResult's first message; a watch's terminal event)."""
    spec = record.spec or {}
    values = record.values if record.state is JobState.SUCCEEDED else None
    columns = spec.get("columns", [])
    header = coordinator_pb2.ResultHeader(
        job_id=record.job_id,
        state=_STATE_TO_PROTO[record.state],
        statistic=str(record.query.get("statistic", "")),
        dataset=str(record.query.get("dataset", "")),
        labels=record.labels,
        parties=record.parties,
        length=0 if values is None else values.size,
        frac_bits=int(spec.get("frac_bits", 0)),  # type: ignore[call-overload]
        tolerance=record.tolerance,
        error=record.error,
        bounds=[
            common_pb2.ColumnBounds(column=c["column"], lo=c["lo"], hi=c["hi"])
            for c in columns  # type: ignore[attr-defined]
        ],
        created_at=record.created_at,
        finished_at=record.finished_at,
        privacy=_privacy_to_proto(record.privacy, record.labels)
        if record.state is JobState.SUCCEEDED
        else None,
    )
    if values is not None:  # per label, recomputed from the public spec
        per_label = tolerances_from_spec_json(spec) or [record.tolerance] * len(record.labels)
        header.tolerances.extend(
            coordinator_pb2.LabelTolerance(label=label, tolerance=tolerance)
            for label, tolerance in zip(record.labels, per_label, strict=False)
        )
        trained = model(record.job_id)
        if trained is not None:
            header.model_json = json.dumps(trained)
    return header


def result_events(
    event: coordinator_pb2.JobEvent,
    record: JobRecord,
    model: Callable[[str], dict[str, Any] | None],
    chunk_words: int = CHUNK_WORDS,
) -> Iterator[coordinator_pb2.JobEvent]:
    """The terminal SUCCEEDED event with the result's header and first values, then one
    event per further chunk of at most ``chunk_words`` float64 values (~1 MiB)."""
    if record.state is not JobState.SUCCEEDED or record.values is None:
        yield event  # not stored yet nor in memory (should not happen): GetResult
        return
    event.result.CopyFrom(result_header(record, model))
    chunks = convert.float_chunks(record.values, chunk_words)
    first = next(chunks, None)
    if first is not None:
        event.values = first.data
    yield event
    for chunk in chunks:
        yield coordinator_pb2.JobEvent(
            job_id=event.job_id,
            state=event.state,
            stage=event.stage,
            message=event.message,
            progress=event.progress,
            values=chunk.data,
        )


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):  # type: ignore[misc]
    def __init__(self, service: CoordinatorService, ca: x509.Certificate) -> None:
        self.service = service
        self._ca = ca  # to verify clients' signed queries before queueing them

    def _verified(
        self, request: coordinator_pb2.SubmitJobRequest, peer: Peer
    ) -> tuple[Query, ClientAuth]:
        """The client's signed query, verified, with its histogram edges."""
        if not request.HasField("signed"):
            raise AccessDeniedError(
                "the query is not signed: clients sign every query with their certificate key "
                "(parties refuse unsigned jobs); use a current mpc client"
            )
        auth = convert.client_auth_from_proto(request.signed)
        signed = verify_client(auth, self._ca)
        if signed.client != peer.name:
            raise AccessDeniedError(
                f"the query is signed by {signed.client!r} but submitted by {peer.name!r}"
            )
        return signed.with_edges(convert.edges_from_bytes(request.query.bin_edges)), auth

    @handle_errors
    def SubmitJob(
        self, request: coordinator_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.SubmitJobResponse:
        peer = require_role(context, *_CLIENT_ROLES)
        query, auth = self._verified(request, peer)
        job_id = self.service.submit(query, peer.name, admin=_is_admin(peer), client=auth)
        return coordinator_pb2.SubmitJobResponse(job_id=job_id)

    @handle_stream_errors
    def RunJob(
        self, request: coordinator_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.JobEvent]:
        peer = require_role(context, *_CLIENT_ROLES)
        query, auth = self._verified(request, peer)
        # The watch slot first: a client at its cap is refused before a job exists.
        with self.service.watch_slot(peer.name):
            job_id = self.service.submit(query, peer.name, admin=_is_admin(peer), client=auth)
            yield from self._job_events(job_id, context)

    @handle_stream_errors
    def WatchJob(
        self, request: coordinator_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.JobEvent]:
        peer = require_role(context, *_CLIENT_ROLES)
        # Unknown, or another client's: the same NOT_FOUND either way.
        self.service.check_visible(request.job_id, peer.name, admin=_is_admin(peer))
        with self.service.watch_slot(peer.name):  # RESOURCE_EXHAUSTED beyond the caps
            yield from self._job_events(request.job_id, context)

    def _job_events(
        self, job_id: str, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.JobEvent]:
        """A visible job's events to its end; the result rides on the terminal event."""
        for event in self.service.watch(job_id, alive=context.is_active):
            if not context.is_active():
                return
            message = coordinator_pb2.JobEvent(
                job_id=event.job_id,
                state=_STATE_TO_PROTO[event.state],
                stage=event.stage,
                message=event.message,
                progress=event.progress,
            )
            if event.state is not JobState.SUCCEEDED:
                yield message
                continue
            # Served from memory until it is stored; the caller passed the same visibility
            # check as GetResult's.
            record = self.service.record(job_id)
            yield from result_events(message, record, self.service.model)

    @handle_stream_errors
    def GetResult(
        self, request: coordinator_pb2.GetResultRequest, context: grpc.ServicerContext
    ) -> Iterator[coordinator_pb2.ResultChunk]:
        peer = require_role(context, *_CLIENT_ROLES)
        record = self.service.visible_record(request.job_id, peer.name, admin=_is_admin(peer))
        header = result_header(record, self.service.model)
        yield coordinator_pb2.ResultChunk(header=header)
        if record.state is JobState.SUCCEEDED and record.values is not None:
            for chunk in convert.float_chunks(record.values):
                yield coordinator_pb2.ResultChunk(values=chunk)

    @handle_errors
    def ListJobs(
        self, request: coordinator_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ListJobsResponse:
        peer = require_role(context, *_CLIENT_ROLES)
        jobs = self.service.list_jobs(
            peer.name,
            admin=_is_admin(peer),
            limit=request.limit,
            all_clients=request.all_clients,
        )
        return coordinator_pb2.ListJobsResponse(
            jobs=[
                coordinator_pb2.JobSummary(
                    job_id=job.job_id,
                    state=_STATE_TO_PROTO[job.state],
                    statistic=job.statistic,
                    dataset=job.dataset,
                    submitted_by=job.submitted_by,
                    created_at=job.created_at,
                    finished_at=job.finished_at,
                    epsilon_spent=job.epsilon_spent,
                    error=job.error,
                )
                for job in jobs
            ]
        )

    @handle_errors
    def ListParties(
        self, request: coordinator_pb2.ListPartiesRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.ListPartiesResponse:
        require_role(context, *_CLIENT_ROLES)
        return coordinator_pb2.ListPartiesResponse(
            parties=[
                coordinator_pb2.PartyInfo(
                    party_id=status.party_id,
                    address=status.address,
                    reachable=status.reachable,
                    error=status.error,
                    datasets=[convert.dataset_to_proto(d) for d in status.datasets],
                )
                for status in self.service.parties()
            ]
        )

    @handle_errors
    def GetBudgets(
        self, request: coordinator_pb2.GetBudgetsRequest, context: grpc.ServicerContext
    ) -> coordinator_pb2.GetBudgetsResponse:
        require_role(context, *_CLIENT_ROLES)
        mine, parties = self.service.budgets()
        return coordinator_pb2.GetBudgetsResponse(
            coordinator=[convert.budget_to_proto(s) for s in mine],
            parties=[
                coordinator_pb2.PartyBudgets(
                    party_id=p.party_id,
                    reachable=p.reachable,
                    error=p.error,
                    budgets=[convert.budget_to_proto(s) for s in p.budgets],
                )
                for p in parties
            ],
        )


def build_coordinator(config: CoordinatorConfig) -> tuple[RunningServer, CoordinatorService]:
    identity = config.tls.load()
    watch_revocations(identity.ca_certificate, config.tls.crl_path)  # revoked peers refused
    if identity.role != Role.COORDINATOR.value:
        raise ConfigError(
            f"{config.tls.cert} is a {identity.role!r} certificate, not the coordinator's"
        )
    links: dict[str, PartyLink] = {
        p.party_id: GrpcPartyLink(p.party_id, p.address, identity) for p in config.parties
    }
    service = CoordinatorService(
        links,
        {p.party_id: p.address for p in config.parties},
        JobStore(config.database),
        job_timeout=config.job_timeout_seconds,
        rpc_timeout=config.rpc_timeout_seconds,
        max_concurrent_jobs=config.max_concurrent_jobs,
        ledger=Ledger(config.database),
        budgets=config.budgets,
        colluders=config.colluders,
        min_cell_count=config.min_cell_count,
        max_queued_per_client=config.max_queued_per_client,
    )
    servicer = CoordinatorServicer(service, identity.ca_certificate)
    running = RunningServer(
        config.listen,
        identity,
        lambda server: coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, server),
        [SERVICE_NAME],
        max_workers=MAX_WATCH_STREAMS + _SPARE_WORKERS,
    )
    return running, service


def serve_coordinator(config: CoordinatorConfig, ready_file: Path | None = None) -> None:
    running, service = build_coordinator(config)
    log.info("coordinator expecting parties %s", [p.party_id for p in config.parties])
    try:
        serve_until_signalled(running, ready_file)
    finally:
        service.close(wait=2.0)
        service.close_stores()  # checkpoints SQLite: no -wal/-shm files left behind


__all__ = ["CoordinatorServicer", "QueryError", "build_coordinator", "serve_coordinator"]
