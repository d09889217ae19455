"""Job orchestration: describe -> key setup -> round -> reconstruct -> decode -> post-process.

Transport-agnostic: it talks to parties through :class:`PartyLink` (gRPC in production, an
in-process runtime in unit tests). The coordinator never holds a partial set of shares in a
revealable form: :class:`ShareAggregator` refuses to reveal until every participant's share
arrived complete, and any failure aborts the job with nothing revealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from mpc.errors import MpcError, PartyFailedError, QueryError
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.secure_sum import ShareAggregator, SignedKeyOffer
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic, check_bounds
from mpc.ring import DEFAULT_FRAC_BITS, RingVector, check_headroom, decode, resolution
from mpc.stats import definition

log = logging.getLogger(__name__)
T = TypeVar("T")


class PartyLink(Protocol):
    party_id: str

    def describe(self, timeout: float) -> list[DatasetInfo]: ...

    def setup(self, spec: JobSpec, timeout: float) -> SignedKeyOffer: ...

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer], timeout: float) -> None: ...

    def contribute(
        self, job_id: str, round_id: int, length: int, timeout: float
    ) -> Iterator[tuple[int, RingVector]]: ...

    def abort(self, job_id: str, reason: str, timeout: float) -> None: ...


@dataclass(frozen=True)
class Query:
    """What a client asks for. Bounds missing here come from the parties' public schemas."""

    statistic: Statistic
    dataset: str
    columns: tuple[str, ...] = ()
    bounds: tuple[ColumnBound, ...] = ()
    frac_bits: int | None = None
    parties: tuple[str, ...] = ()

    def validate(self) -> None:
        for bound in self.bounds:
            check_bounds(bound.column, bound.lo, bound.hi)
        if len(set(self.columns)) != len(self.columns):
            raise QueryError("a column is listed twice")
        extra = {b.column for b in self.bounds} - set(self.columns)
        if self.statistic is not Statistic.VECTOR_SUM and extra:
            raise QueryError(f"bounds given for columns not in the query: {sorted(extra)}")
        if self.statistic in (Statistic.SUM, Statistic.MEAN) and not self.columns:
            raise QueryError(f"{self.statistic.value} needs at least one --column")

    def to_json(self) -> dict[str, object]:
        return {
            "statistic": self.statistic.value,
            "dataset": self.dataset,
            "columns": list(self.columns),
            "bounds": {b.column: [b.lo, b.hi] for b in self.bounds},
            "frac_bits": self.frac_bits,
            "parties": list(self.parties),
        }


@dataclass(frozen=True)
class Outcome:
    spec: JobSpec
    labels: list[str]
    values: np.ndarray
    tolerance: float


Progress = Callable[[str, str, float], None]


class JobRunner:
    """Runs one job against a set of party links, within a deadline."""

    def __init__(
        self,
        links: dict[str, PartyLink],
        pool: ThreadPoolExecutor,
        *,
        job_timeout: float,
        rpc_timeout: float,
        default_frac_bits: int = DEFAULT_FRAC_BITS,
    ) -> None:
        self._links = links
        self._pool = pool
        self._job_timeout = job_timeout
        self._rpc_timeout = rpc_timeout
        self._default_frac_bits = default_frac_bits

    def run(self, job_id: str, query: Query, progress: Progress) -> Outcome:
        deadline = time.monotonic() + self._job_timeout
        query.validate()
        selected = self._select(query)
        progress("describe", f"asking {len(selected)} parties for their schemas", 0.05)
        schemas = self._each(selected, lambda link: link.describe(self._budget(deadline)), deadline)
        spec = self._build_spec(job_id, query, schemas)
        stat = definition(spec.statistic)
        check_headroom(stat.components(spec), spec.total_max_rows, spec.frac_bits)
        links = [self._links[pid] for pid in spec.party_ids]
        try:
            progress("setup", "parties check the job and offer signed ephemeral keys", 0.2)
            offers_by_party = self._each(
                links, lambda link: link.setup(spec, self._budget(deadline)), deadline
            )
            offers = [offers_by_party[pid] for pid in spec.party_ids]
            progress("keys", "parties verify every signed key and derive pairwise seeds", 0.4)
            self._each(
                links, lambda link: link.agree(job_id, offers, self._budget(deadline)), deadline
            )
            length = stat.output_length(spec)
            progress("round", f"collecting masked shares of {length} words", 0.6)
            revealed = self._collect_round(spec, links, 0, length, deadline)
        except BaseException:
            self._abort_all(links, job_id, "job failed")
            raise
        self._abort_all(links, job_id, "job finished")
        progress("reveal", "decoding the aggregate", 0.9)
        values = stat.finish(spec, decode(revealed, spec.frac_bits))
        return Outcome(spec, stat.labels(spec), values, _tolerance(spec))

    # --- stages ------------------------------------------------------------------------

    def _select(self, query: Query) -> list[PartyLink]:
        if not query.parties:
            return [self._links[pid] for pid in sorted(self._links)]
        unknown = sorted(set(query.parties) - set(self._links))
        if unknown:
            raise QueryError(f"unknown parties {unknown}; configured: {sorted(self._links)}")
        return [self._links[pid] for pid in sorted(set(query.parties))]

    def _build_spec(
        self, job_id: str, query: Query, schemas: dict[str, list[DatasetInfo]]
    ) -> JobSpec:
        datasets: dict[str, DatasetInfo] = {}
        for pid, infos in schemas.items():
            found = next((d for d in infos if d.name == query.dataset), None)
            if found is None:
                raise QueryError(f"unknown dataset {query.dataset!r} at party {pid!r}")
            datasets[pid] = found
        kinds = {d.kind for d in datasets.values()}
        wanted_kind = "vector" if query.statistic is Statistic.VECTOR_SUM else "table"
        if kinds != {wanted_kind}:
            raise QueryError(
                f"dataset {query.dataset!r} is not a {wanted_kind} dataset at every party; "
                f"{query.statistic.value} needs one"
            )
        given = {b.column: b for b in query.bounds}
        columns = ("value",) if wanted_kind == "vector" else query.columns
        bounds: list[ColumnBound] = []
        for column in columns:
            declared: set[tuple[float | None, float | None]] = set()
            for pid, info in datasets.items():
                schema = next((c for c in info.columns if c.name == column), None)
                if schema is None:
                    raise QueryError(
                        f"unknown column {column!r} in dataset {query.dataset!r} at party {pid!r}"
                    )
                declared.add((schema.lo, schema.hi))
            lo, hi = next(iter(declared))
            if column in given:
                bounds.append(given[column])
            elif len(declared) == 1 and lo is not None and hi is not None:
                bounds.append(ColumnBound(column, lo, hi))
            elif len(declared) > 1:
                raise QueryError(
                    f"parties declare different bounds for column {column!r}; pass --bounds LO:HI"
                )
            else:
                raise QueryError(
                    f"no bounds for column {column!r}: pass --bounds LO:HI or declare lo/hi in "
                    "the parties' dataset schema"
                )
        lengths = {d.vector_length for d in datasets.values()}
        if wanted_kind == "vector" and len(lengths) != 1:
            raise QueryError(f"vector dataset {query.dataset!r} has different lengths at parties")
        return JobSpec(
            job_id=job_id,
            statistic=query.statistic,
            dataset=query.dataset,
            columns=tuple(bounds),
            frac_bits=self._default_frac_bits if query.frac_bits is None else query.frac_bits,
            participants=tuple(
                Participant(pid, datasets[pid].max_rows) for pid in sorted(datasets)
            ),
            vector_length=lengths.pop() if wanted_kind == "vector" else 0,
        )

    def _collect_round(
        self,
        spec: JobSpec,
        links: list[PartyLink],
        round_id: int,
        length: int,
        deadline: float,
    ) -> RingVector:
        aggregator = ShareAggregator(spec.party_ids, length)

        def pull(link: PartyLink) -> None:
            for offset, words in link.contribute(
                spec.job_id, round_id, length, max(0.001, deadline - time.monotonic())
            ):
                try:
                    aggregator.add(link.party_id, offset, words)
                except MpcError as exc:
                    raise PartyFailedError(link.party_id, str(exc)) from None
            try:
                aggregator.check_complete(link.party_id)
            except MpcError as exc:
                raise PartyFailedError(link.party_id, str(exc)) from None

        self._each(links, pull, deadline)
        return aggregator.reveal()

    # --- helpers -----------------------------------------------------------------------

    def _budget(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise QueryError("the job ran past its deadline")
        return min(self._rpc_timeout, remaining)

    def _each(
        self, links: Sequence[PartyLink], call: Callable[[PartyLink], T], deadline: float
    ) -> dict[str, T]:
        """Run ``call`` for every party concurrently; the first failure fails the stage."""
        futures: dict[Future[T], str] = {
            self._pool.submit(call, link): link.party_id for link in links
        }
        done, pending = wait(
            futures,
            timeout=max(0.0, deadline - time.monotonic()) + 1.0,
            return_when=FIRST_EXCEPTION,
        )
        for future in done:
            exc = future.exception()
            if exc is not None:
                for other in pending:
                    other.cancel()
                if isinstance(exc, MpcError) and not isinstance(exc, PartyFailedError):
                    raise PartyFailedError(futures[future], str(exc)) from None
                raise exc
        if pending:
            late = sorted(futures[f] for f in pending)
            raise PartyFailedError(late[0], "did not answer before the job deadline")
        return {futures[f]: f.result() for f in done}

    def _abort_all(self, links: Sequence[PartyLink], job_id: str, reason: str) -> None:
        for link in links:
            self._pool.submit(link.abort, job_id, reason, 2.0)


def _tolerance(spec: JobSpec) -> float:
    """Worst-case fixed-point error of each released value (from public limits only)."""
    half_step = resolution(spec.frac_bits) / 2
    if spec.statistic is Statistic.COUNT:
        return 0.0
    if spec.statistic is Statistic.MEAN:
        return half_step
    if spec.statistic is Statistic.VECTOR_SUM:
        return len(spec.participants) * half_step
    return spec.total_max_rows * half_step
