"""Python API: ``mpc.Client`` talks to a coordinator over mutual TLS.

>>> with Client("127.0.0.1:50050", tls_dir="certs") as client:   # doctest: +SKIP
...     result = client.mean("health", ["age", "bmi"], bounds={"age": (0, 120)})
...     print(result.as_dict(), result.parties)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from mpc.config import TlsFiles
from mpc.coordinator.service import JobEvent, PartyBudgets, PartyStatus
from mpc.coordinator.store import JobState, JobSummary
from mpc.errors import JobFailedError, MpcError, ProtocolError, QueryError
from mpc.identity import Role, require_valid_own_certificate
from mpc.ledger import BudgetStatus
from mpc.proto.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc
from mpc.protocol.query import sign_query
from mpc.protocol.spec import ColumnBound, Statistic
from mpc.ring import MAX_FRAC_BITS
from mpc.transport import convert
from mpc.transport.errors import from_rpc_error
from mpc.transport.tls import secure_channel

Bounds = Mapping[str, tuple[float, float]] | tuple[float, float] | None

_STATE_FROM_PROTO = {
    coordinator_pb2.JOB_STATE_PENDING: JobState.PENDING,
    coordinator_pb2.JOB_STATE_RUNNING: JobState.RUNNING,
    coordinator_pb2.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    coordinator_pb2.JOB_STATE_FAILED: JobState.FAILED,
}


@dataclass(frozen=True)
class PrivacyReport:
    """How much to trust a noisy result, and what it cost."""

    noise: str
    epsilon: float
    delta: float
    epsilon_spent: float
    rho_spent: float
    sigma: dict[str, float]  # noise standard deviation per value, data units
    error_bound_95: dict[str, float]  # |released - exact| <= this with probability >= 95%
    # What each sigma is: "exact", "delta-method" (first-order, every noise included) or
    # "upper bound"; the 95% bounds are proven bounds either way.
    error_kind: dict[str, str] | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueryResult:
    """A revealed aggregate. ``values[i]`` belongs to ``labels[i]`` (one label per column)."""

    job_id: str
    statistic: str
    dataset: str
    labels: tuple[str, ...]
    values: np.ndarray
    parties: tuple[str, ...]
    tolerance: float
    frac_bits: int
    bounds: tuple[ColumnBound, ...]
    privacy: PrivacyReport | None = None
    model: dict[str, object] | None = None  # training jobs: the model (see TrainResult)
    # Worst-case fixed-point error per label (``tolerance`` is the largest of them).
    tolerances: dict[str, float] | None = None

    def as_dict(self) -> dict[str, float]:
        if len(self.labels) != self.values.size:
            raise ValueError("as_dict is for one value per label; use .values for vectors")
        return {label: float(v) for label, v in zip(self.labels, self.values, strict=True)}

    @property
    def value(self) -> float:
        """The single value of a one-column result."""
        if self.values.size != 1:
            raise ValueError(f"result has {self.values.size} values; use .values or .as_dict()")
        return float(self.values[0])

    def to_json(self, include_values: bool = True) -> dict[str, object]:
        data: dict[str, object] = {
            "job_id": self.job_id,
            "statistic": self.statistic,
            "dataset": self.dataset,
            "parties": list(self.parties),
            "frac_bits": self.frac_bits,
            "tolerance": self.tolerance,
            "tolerances": self.tolerances,
            "bounds": {b.column: [b.lo, b.hi] for b in self.bounds},
        }
        if include_values:
            # Suppressed cells (NaN: an exact histogram's small counts) are JSON null.
            values = [None if np.isnan(v) else float(v) for v in self.values.tolist()]
            if len(self.labels) == self.values.size:
                data["values"] = dict(zip(self.labels, values, strict=True))
            else:
                data["values"] = values
            suppressed = int(np.count_nonzero(np.isnan(self.values)))
            if suppressed:
                data["suppressed_cells"] = suppressed
        data["length"] = int(self.values.size)
        data["privacy"] = self.privacy.to_json() if self.privacy else None
        return data


@dataclass(frozen=True)
class TrainResult:
    """A trained model: ``model`` is the JSON object ``mpc train --out`` writes."""

    job_id: str
    model: dict[str, object]
    labels: tuple[str, ...]  # "intercept", then the features
    values: np.ndarray  # intercept and coefficients on the original feature scale
    privacy: PrivacyReport | None = None

    @property
    def curve(self) -> list[dict[str, float]]:
        curve: list[dict[str, float]] = list(self.model.get("curve") or [])  # type: ignore[call-overload]
        return curve

    @property
    def evaluation(self) -> dict[str, float | None] | None:
        return self.model.get("evaluation")  # type: ignore[return-value]


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


class Client:
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
    ) -> QueryResult:
        """Submit a query, follow it to the end, and return its result (or raise).

        With ``epsilon`` the result is differentially private: ``noise="distributed"`` (each
        party adds its share of noise; nobody sees the exact aggregate) or ``"central"`` (the
        coordinator adds it). ``delta=0`` asks for pure epsilon-DP (central only).
        """
        stat = convert.statistic_from_name(str(statistic))
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
        )
        job_id = self.submit(query)
        for event in self.watch(job_id):
            if on_event is not None:
                on_event(event)
        return self.result(job_id)

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
        job_id = self.submit(query)
        for event in self.watch(job_id):
            if on_event is not None:
                on_event(event)
        result = self.result(job_id)
        if result.model is None:
            raise ProtocolError(f"job {job_id} returned no model")
        return TrainResult(
            result.job_id, result.model, result.labels, result.values, result.privacy
        )

    def submit(self, query: coordinator_pb2.Query) -> str:
        # Signed with this client's certificate key, a fresh nonce and the time: every party
        # verifies the signature itself, so it knows who asked even if the coordinator lies.
        domain = convert.query_from_proto(query)
        signed = sign_query(self._identity, domain)
        # The histogram edges travel in `query` (the signature binds their SHA-256).
        request = coordinator_pb2.SubmitJobRequest(
            query=coordinator_pb2.Query(bin_edges=query.bin_edges),
            signed=convert.client_auth_to_proto(signed),
        )
        try:
            response = self._stub.SubmitJob(request, timeout=min(30.0, self.timeout))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None
        return str(response.job_id)

    def watch(self, job_id: str) -> Iterator[JobEvent]:
        deadline = time.monotonic() + self.timeout
        try:
            # wait_for_ready: the job exists, so the coordinator was reachable; ride out a
            # reconnect instead of failing the watch at the first refused attempt.
            for event in self._stub.WatchJob(
                coordinator_pb2.WatchJobRequest(job_id=job_id),
                timeout=max(0.001, deadline - time.monotonic()),
                wait_for_ready=True,
            ):
                yield JobEvent(
                    job_id=event.job_id,
                    state=_STATE_FROM_PROTO.get(event.state, JobState.PENDING),
                    stage=event.stage,
                    message=event.message,
                    progress=event.progress,
                )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"coordinator at {self.coordinator}") from None

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
        return QueryResult(
            job_id=header.job_id,
            statistic=header.statistic,
            dataset=header.dataset,
            labels=tuple(header.labels),
            values=values,
            parties=tuple(header.parties),
            tolerance=header.tolerance,
            frac_bits=header.frac_bits,
            bounds=tuple(ColumnBound(b.column, b.lo, b.hi) for b in header.bounds),
            privacy=PrivacyReport(
                noise=header.privacy.noise,
                epsilon=header.privacy.epsilon,
                delta=header.privacy.delta,
                epsilon_spent=header.privacy.epsilon_spent,
                rho_spent=header.privacy.rho_spent,
                sigma={v.label: v.sigma for v in header.privacy.values},
                error_bound_95={v.label: v.error_bound_95 for v in header.privacy.values},
                error_kind={v.label: v.error_kind for v in header.privacy.values if v.error_kind}
                or None,
            )
            if header.HasField("privacy")
            else None,
            model=json.loads(header.model_json) if header.model_json else None,
            tolerances={t.label: t.tolerance for t in header.tolerances} or None,
        )

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
