"""Python API: ``mpc.Client`` talks to a coordinator over mutual TLS.

>>> with Client("127.0.0.1:50050", tls_dir="certs") as client:   # doctest: +SKIP
...     result = client.mean("health", ["age", "bmi"], bounds={"age": (0, 120)})
...     print(result.as_dict(), result.parties)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np

from mpc.budget_status import BudgetStatus
from mpc.client_admin import _STATE_FROM_PROTO, AdminMixin
from mpc.client_analyses import AnalysesMixin
from mpc.client_stream import collect, progress_callback
from mpc.coordinator.events import JobEvent, PartyBudgets
from mpc.coordinator.events import PartyStatus as PartyStatus
from mpc.coordinator.store import JobState, JobSummary
from mpc.errors import JobFailedError, MpcError, ProtocolError, QueryError
from mpc.identity import Role, TlsFiles, require_valid_own_certificate
from mpc.proto.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from mpc.protocol.frame import Condition, GroupKey
from mpc.protocol.query import sign_query
from mpc.protocol.spec import ColumnBound, Statistic
from mpc.protocol.where import group_keys, parse_where
from mpc.results import (
    PrivacyReport,
    QueryResult,
    TrainResult,
    result_from_header,
    result_layout,
)
from mpc.ring import MAX_FRAC_BITS
from mpc.transport import convert
from mpc.transport.errors import from_rpc_error
from mpc.transport.tls import secure_channel


def _event_from_proto(event: coordinator_pb2.JobEvent) -> JobEvent:
    return JobEvent(
        job_id=event.job_id,
        state=_STATE_FROM_PROTO.get(event.state, JobState.PENDING),
        stage=event.stage,
        message=event.message,
        progress=event.progress,
    )


Bounds = Mapping[str, tuple[float, float]] | tuple[float, float] | None
GroupBy = str | GroupKey | Sequence[str | GroupKey]


def _bounds_list(columns: Sequence[str], bounds: Bounds) -> list[ColumnBound]:
    if bounds is None:
        return []
    if isinstance(bounds, tuple):
        lo, hi = bounds
        return [ColumnBound(c, lo, hi) for c in columns]
    return [ColumnBound(c, lo, hi) for c, (lo, hi) in bounds.items()]


def _frac_bits(frac_bits: int | None) -> int | None:
    """``None``: the coordinator's default; 0 is valid (integers only)."""
    if frac_bits is not None and not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise QueryError(f"frac_bits must be between 0 and {MAX_FRAC_BITS}, not {frac_bits}")
    return frac_bits


class Client(AnalysesMixin, AdminMixin):
    """A client of one coordinator. Thread-safe; close it (or use ``with``) when done."""

    def __init__(
        self,
        coordinator: str,
        tls_dir: str | Path | None = None,
        *,
        name: str = "client",
        tls: TlsFiles | None = None,
        timeout: float = 300.0,
    ) -> None:
        if tls is None:
            if tls_dir is None:
                raise QueryError("give tls_dir (with ca.pem, NAME.pem, NAME.key) or tls")
            tls = TlsFiles.from_dir(Path(tls_dir), name)
        identity = tls.load()
        require_valid_own_certificate(identity, tls.cert)  # else TLS fails: "socket closed"
        if identity.role not in (Role.CLIENT.value, Role.ADMIN.value):
            raise QueryError(f"{tls.cert} is a {identity.role!r} certificate, not a client's")
        self.coordinator = coordinator
        self.timeout = timeout
        self._identity = identity  # signs every query (parties verify who asked)
        # The channel's connect timeout (secure_channel: 10 s) outlasts a TLS handshake with a
        # busy coordinator; watch and result calls also wait_for_ready through reconnects.
        self._channel = secure_channel(coordinator, identity, expected_name="coordinator")
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # --- queries -------------------------------------------------------------------------

    def sum(
        self, dataset: str, columns: Sequence[str], bounds: Bounds = None, **kw: object
    ) -> QueryResult:
        return self.query(Statistic.SUM, dataset, columns, bounds, **kw)  # type: ignore[arg-type]

    def count(
        self, dataset: str, columns: Sequence[str] = (), bounds: Bounds = None, **kw: object
    ) -> QueryResult:
        return self.query(Statistic.COUNT, dataset, columns, bounds, **kw)  # type: ignore[arg-type]

    def mean(
        self, dataset: str, columns: Sequence[str], bounds: Bounds = None, **kw: object
    ) -> QueryResult:
        return self.query(Statistic.MEAN, dataset, columns, bounds, **kw)  # type: ignore[arg-type]

    def variance(
        self, dataset: str, columns: Sequence[str], bounds: Bounds = None, **kw: object
    ) -> QueryResult:
        """Sample variance (``ddof=1``) of each column, values clamped to its bounds."""
        return self.query(Statistic.VARIANCE, dataset, columns, bounds, **kw)  # type: ignore[arg-type]

    def histogram(
        self, dataset: str, column: str, edges: Sequence[float], **kw: object
    ) -> QueryResult:
        """Counts per bin ``[edges[i], edges[i+1])`` (the last bin closed) of one column;
        values outside ``[edges[0], edges[-1]]`` are counted in the first/last bin.
        ``result.values[i]`` is bin i's count."""
        return self.query(Statistic.HISTOGRAM, dataset, [column], bin_edges=edges, **kw)  # type: ignore[arg-type]

    def vector_sum(self, dataset: str, bounds: tuple[float, float], **kw: object) -> QueryResult:
        return self.query(Statistic.VECTOR_SUM, dataset, ["value"], bounds, **kw)  # type: ignore[arg-type]

    def query(
        self,
        statistic: Statistic | str,
        dataset: str,
        columns: Sequence[str] = (),
        bounds: Bounds = None,
        *,
        parties: Sequence[str] = (),
        frac_bits: int | None = None,
        epsilon: float | None = None,
        delta: float = 1e-6,
        noise: str = "distributed",
        on_event: Callable[[JobEvent], None] | None = None,
        bin_edges: Sequence[float] = (),
        where: str | Condition | None = None,
        group_by: GroupBy = (),
        quantiles: Sequence[float] = (),
    ) -> QueryResult:
        """Submit a query, follow it to the end, and return its result (or raise).

        With ``epsilon`` the result is differentially private: ``noise="distributed"`` (each
        party adds its share of noise; nobody sees the exact aggregate) or ``"central"`` (the
        coordinator adds it). ``delta=0`` asks for pure epsilon-DP (central only).

        ``where`` filters rows (``"age >= 40 and smoker in ('yes')"``, or a
        :class:`~mpc.protocol.frame.Condition`); ``group_by`` computes the statistic per cell
        of one or more keys: a categorical column's name (its categories come from the
        parties' published schemas), ``"column:E0,E1,...,Ek"`` (a numeric column cut at bin
        edges) or a :class:`~mpc.protocol.frame.GroupKey`. Exact (non-DP) filtered or grouped
        results need every party's ``exact_filters`` policy; with ``epsilon`` they are always
        allowed. ``result.to_pandas()`` gives the table.
        """
        stat = convert.statistic_from_name(str(statistic))
        condition = parse_where(where) if isinstance(where, str) else where
        keys = self._group_keys(dataset, group_by)
        if epsilon is None:
            noise, delta = "none", 0.0
        else:
            convert.noise_mode_from_name(noise)
        wire_columns = [] if stat is Statistic.VECTOR_SUM else list(columns)
        query = coordinator_pb2.Query(
            statistic=stat.value,
            dataset=dataset,
            columns=wire_columns,
            bounds=[
                common_pb2.ColumnBounds(column=b.column, lo=b.lo, hi=b.hi)
                for b in _bounds_list(columns, bounds)
            ],
            frac_bits=_frac_bits(frac_bits),
            parties=list(parties),
            noise=noise,
            epsilon=epsilon or 0.0,
            delta=delta,
            bin_edges=convert.floats_to_bytes(np.asarray(bin_edges, dtype=np.float64)),
            where_json=convert.where_to_json(condition),
            group_by_json=convert.group_by_to_json(keys),
            quantiles=convert.floats_to_bytes(np.asarray(quantiles, dtype=np.float64)),
        )
        domain = convert.query_from_proto(query)
        result = self._run(query, on_event)
        return replace(result, layout=result_layout(result, domain))

    def _group_keys(self, dataset: str, group_by: GroupBy) -> tuple[GroupKey, ...]:
        """Group keys from names (categories from the published schemas), ``column:edges``
        strings or GroupKey objects (:func:`mpc.protocol.where.group_keys`)."""
        items = [group_by] if isinstance(group_by, (str, GroupKey)) else list(group_by)
        needs_schema = any(isinstance(i, str) and ":" not in i for i in items)
        schemas = (
            [d for party in self.parties() for d in party.datasets if d.name == dataset]
            if needs_schema
            else []
        )
        return group_keys(items, schemas, dataset)

    def train(
        self,
        model: str,
        dataset: str,
        features: Sequence[str],
        label: str,
        *,
        rounds: int = 20,
        lr: float = 0.0,  # 0: the coordinator's automatic safe step
        l2: float = 0.0,
        clip: float = 0.0,
        batch_rate: float = 0.0,
        method: str = "gd",
        closed_form: bool = False,
        tol: float = 0.0,
        holdout: float = 0.0,
        standardise: str | None = None,
        bounds: Bounds = None,
        parties: Sequence[str] = (),
        frac_bits: int | None = None,
        epsilon: float | None = None,
        delta: float = 1e-6,
        noise: str = "distributed",
        resume: str = "",
        on_event: Callable[[JobEvent], None] | None = None,
    ) -> TrainResult:
        """Train a linear or logistic regression model over the parties' rows (or raise).

        Standardisation defaults to secure moments over all parties, or the declared bounds
        with ``epsilon`` (data-independent, so it does not leak). ``resume`` continues a failed
        training job from its last completed round.
        """
        if epsilon is None:
            noise, delta = "none", 0.0
        columns = [*features, label]
        training = common_pb2.TrainingSpec(
            model=model,
            label=label,
            rounds=1 if closed_form else rounds,
            lr=lr,
            l2=l2,
            clip=clip,
            batch_rate=batch_rate,
            method="closed_form" if closed_form else method,
            tol=tol,
            holdout=holdout,
            standardise=standardise or ("bounds" if epsilon is not None else "secure"),
        )
        query = coordinator_pb2.Query(
            statistic=Statistic.TRAIN.value,
            dataset=dataset,
            columns=columns,
            bounds=[
                common_pb2.ColumnBounds(column=b.column, lo=b.lo, hi=b.hi)
                for b in _bounds_list(columns, bounds)
            ],
            frac_bits=_frac_bits(frac_bits),
            parties=list(parties),
            noise=noise,
            epsilon=epsilon or 0.0,
            delta=delta,
            training=training,
            resume_from=resume,
        )
        result = self._run(query, on_event)
        if result.model is None:
            raise ProtocolError(f"job {result.job_id} returned no model")
        return TrainResult(
            result.job_id, result.model, result.labels, result.values, result.privacy
        )

    def submit(self, query: coordinator_pb2.Query) -> str:
        """Queue a query; its job id (follow it with :meth:`follow` or :meth:`watch`)."""
        return self._submit_signed(self._signed_request(query))

    def _signed_request(self, query: coordinator_pb2.Query) -> coordinator_pb2.SubmitJobRequest:
        # Signed with this client's certificate key, a fresh nonce and the time: every party
        # verifies the signature itself, so it knows who asked even if the coordinator lies.
        signed = sign_query(self._identity, convert.query_from_proto(query))
        # The histogram edges travel in `query` (the signature binds their SHA-256).
        return coordinator_pb2.SubmitJobRequest(
            query=coordinator_pb2.Query(bin_edges=query.bin_edges),
            signed=convert.client_auth_to_proto(signed),
        )

    def _submit_signed(self, request: coordinator_pb2.SubmitJobRequest) -> str:
        try:
            response = self._stub.SubmitJob(request, timeout=min(30.0, self.timeout))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return str(response.job_id)

    def _events(self, job_id: str) -> Iterator[coordinator_pb2.JobEvent]:
        """The job's raw event stream (a result's value chunks included)."""
        deadline = time.monotonic() + self.timeout
        try:
            # wait_for_ready: the job exists, so the coordinator was reachable; ride out a
            # reconnect instead of failing the watch at the first refused attempt.
            yield from self._stub.WatchJob(
                coordinator_pb2.WatchJobRequest(job_id=job_id),
                timeout=max(0.001, deadline - time.monotonic()),
                wait_for_ready=True,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None

    def watch(self, job_id: str) -> Iterator[JobEvent]:
        """The job's events until it ends (a result on the last one is left out: see
        :meth:`follow`)."""
        for event in self._events(job_id):
            if event.values and not event.HasField("result"):
                continue  # a further chunk of the result on the terminal event
            yield _event_from_proto(event)

    def follow(
        self, job_id: str, on_event: Callable[[JobEvent], None] | None = None
    ) -> QueryResult:
        """Watch a job to its end and return its result (or raise :class:`JobFailedError`).

        The coordinator sends the result on the job's terminal event; from an older one
        (no result on the stream), or when the watch ends early, it comes from GetResult.
        """
        callback = progress_callback(on_event, _event_from_proto)
        _, header, values = collect(self._events(job_id), callback)
        if header is None or header.state != coordinator_pb2.JOB_STATE_SUCCEEDED:
            return self.result(job_id)
        return result_from_header(header, values)

    def _run(
        self, query: coordinator_pb2.Query, on_event: Callable[[JobEvent], None] | None = None
    ) -> QueryResult:
        """Submit and follow in one call (RunJob: one round trip fewer than submit + watch);
        with a coordinator that has no RunJob, submit then follow."""
        request = self._signed_request(query)
        callback = progress_callback(on_event, _event_from_proto)
        try:
            job_id, header, values = collect(
                self._stub.RunJob(request, timeout=self.timeout), callback
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # refused before any event
                return self.follow(self._submit_signed(request), on_event)
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        if header is None or header.state != coordinator_pb2.JOB_STATE_SUCCEEDED:
            if not job_id:
                raise ProtocolError("the coordinator ended the job's stream without an event")
            return self.result(job_id)
        return result_from_header(header, values)

    def result(self, job_id: str) -> QueryResult:
        """The result of a finished job; raises :class:`JobFailedError` if it failed."""
        try:
            stream = iter(
                self._stub.GetResult(
                    coordinator_pb2.GetResultRequest(job_id=job_id),
                    timeout=self.timeout,
                    wait_for_ready=True,
                )
            )
            first = next(stream, None)
            if first is None or not first.HasField("header"):
                raise ProtocolError("result stream did not start with a header")
            header = first.header
            state = _STATE_FROM_PROTO.get(header.state, JobState.PENDING)
            if state is JobState.FAILED:
                raise JobFailedError(job_id, header.error)
            if state is not JobState.SUCCEEDED:
                raise QueryError(f"job {job_id} has not finished (state {state.value})")
            values = convert.floats_from_chunks(header.length, (m.values for m in stream))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return result_from_header(header, values)


__all__ = [
    "BudgetStatus",
    "Client",
    "JobSummary",
    "MpcError",
    "PartyBudgets",
    "PrivacyReport",
    "QueryResult",
    "TrainResult",
]
