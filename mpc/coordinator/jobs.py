"""Job orchestration: describe -> key setup -> round -> reconstruct -> decode -> post-process.

Transport-agnostic: it talks to parties through :class:`PartyLink` (gRPC in production, an
in-process runtime in unit tests). The coordinator never holds a partial set of shares in a
revealable form: :class:`ShareAggregator` refuses to reveal until every participant's share
arrived complete, and any failure aborts the job with nothing revealed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Protocol, TypeVar

import numpy as np

from mpc import dp
from mpc.config import BudgetConfig
from mpc.errors import MpcError, PartyFailedError, PrivacyBudgetError, QueryError
from mpc.ledger import BudgetStatus, Ledger
from mpc.protocol.query import Query as Query
from mpc.protocol.query import query_from_json as query_from_json
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.secure_sum import ShareAggregator, SignedKeyOffer
from mpc.protocol.spec import (
    ClientAuth,
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
)
from mpc.ring import DEFAULT_FRAC_BITS, RingVector, decode, resolution
from mpc.stats import definition
from mpc.stats.privacy import NoiseGroup, NoisePlan, add_noise, prove_headroom

log = logging.getLogger(__name__)
T = TypeVar("T")


class PartyLink(Protocol):
    party_id: str

    def describe(self, timeout: float) -> list[DatasetInfo]: ...

    def setup(self, spec: JobSpec, timeout: float) -> SignedKeyOffer: ...

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer], timeout: float) -> None: ...

    def contribute(
        self,
        job_id: str,
        round_id: int,
        length: int,
        timeout: float,
        round_input: np.ndarray | None = None,
    ) -> Iterator[tuple[int, RingVector]]: ...

    def abort(self, job_id: str, reason: str, timeout: float) -> None: ...

    def ledger(self, timeout: float) -> list[BudgetStatus]: ...


@dataclass(frozen=True)
class NoiseOutcome:
    """The noise in a released result and what it cost (public)."""

    noise: str
    epsilon: float
    delta: float
    epsilon_spent: float
    rho_spent: float
    sigma: tuple[float, ...]
    error_bound_95: tuple[float, ...]
    #: Per value: "exact", "delta-method" or "upper bound" (what sigma is; the 95% bound is
    #: always a proven bound). Empty: not stated (older records).
    error_kind: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            **self.__dict__,
            "sigma": list(self.sigma),
            "error_bound_95": list(self.error_bound_95),
            "error_kind": list(self.error_kind),
        }


@dataclass(frozen=True)
class Outcome:
    spec: JobSpec
    labels: list[str]
    values: np.ndarray
    tolerance: float  # the largest of ``tolerances``
    noise: NoiseOutcome | None = None
    #: Worst-case fixed-point error per label (:func:`value_tolerances`).
    tolerances: tuple[float, ...] = ()


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
        ledger: Ledger | None = None,
        budgets: Mapping[str, BudgetConfig] | None = None,
        colluders: int | None = None,
        min_cell_count: int = 3,
    ) -> None:
        self._min_cell_count = min_cell_count
        self._ledger = ledger
        self._budgets = dict(budgets or {})
        self._colluders = colluders
        self._links = links
        self._pool = pool
        self._job_timeout = job_timeout
        self._rpc_timeout = rpc_timeout
        self._default_frac_bits = default_frac_bits

    def run(
        self, job_id: str, query: Query, progress: Progress, client: ClientAuth | None = None
    ) -> Outcome:
        """Run one query job; ``client`` is the client's signed query, passed on to every
        party unchanged (they verify it themselves)."""
        deadline = time.monotonic() + self._job_timeout
        query.validate()
        selected = self._select(query)
        progress("describe", f"asking {len(selected)} parties for their schemas", 0.05)
        schemas = self._each(selected, lambda link: link.describe(self._budget(deadline)), deadline)
        spec, plan = self._precise_spec(job_id, query, schemas, client)
        stat = definition(spec.statistic)
        self._charge(spec, plan)
        links = self.start_session(spec, progress, deadline)
        try:
            length = stat.output_length(spec)
            progress("round", f"collecting masked shares of {length} words", 0.6)
            revealed = self.collect_round(spec, links, 0, length, deadline)
        except BaseException:
            self._abort_all(links, job_id, "job failed")
            raise
        self._abort_all(links, job_id, "job finished")
        if plan is not None and not plan.distributed:
            progress("noise", "adding central noise", 0.85)
            revealed = add_noise(revealed, plan.sample(revealed.size))
        progress("reveal", "decoding the aggregate", 0.9)
        decoded = decode(revealed, spec.frac_bits)
        values = stat.finish(spec, decoded)
        if spec.statistic is Statistic.HISTOGRAM and plan is None and self._min_cell_count > 1:
            values = suppress_small_cells(values, self._min_cell_count)
        noise = _noise_outcome(spec, plan, decoded, values) if plan else None
        tolerances = value_tolerances(spec)
        return Outcome(
            spec, stat.labels(spec), values, max(tolerances, default=0.0), noise, tolerances
        )

    def _precise_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        client: ClientAuth | None = None,
    ) -> tuple[JobSpec, NoisePlan | None]:
        """The job spec and its noise plan, with the ring headroom proven (else QueryError).

        When the client gave no ``frac_bits`` (a signed query's ``frac_bits`` is honoured
        exactly: parties compare), a sum, mean, variance or vector sum gets the most
        fractional bits whose headroom proof holds, noise tail included, up to
        :data:`AUTO_FRAC_BITS_MAX` (:data:`AUTO_FRAC_BITS_MAX_DP` with DP, where the noise
        dwarfs the rounding), and never fewer than the coordinator's default: a spec the
        default cannot prove is refused with the default's message, as before. Counts and
        histograms are exact at any setting and keep the default. Every party re-proves the
        chosen spec itself.
        """
        if query.frac_bits is not None or query.statistic not in _PRECISION_STATISTICS:
            candidates = [query.frac_bits]
        else:
            default = self._default_frac_bits
            dp_on = query.noise is not NoiseMode.NONE
            cap = AUTO_FRAC_BITS_MAX_DP if dp_on else AUTO_FRAC_BITS_MAX
            candidates = list(range(max(cap, default), default - 1, -1))
        return self.most_precise_spec(job_id, query, schemas, candidates, client)

    def most_precise_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        candidates: Sequence[int | None],
        client: ClientAuth | None = None,
    ) -> tuple[JobSpec, NoisePlan | None]:
        """The spec at the first ``frac_bits`` of ``candidates`` (None: the default) whose
        headroom proof holds, with its noise plan; else the last candidate's QueryError."""
        last: QueryError | None = None
        for bits in candidates:
            spec = self._build_spec(job_id, replace(query, frac_bits=bits), schemas, client)
            try:
                return spec, prove_headroom(spec)
            except QueryError as exc:
                last = exc
        assert last is not None, "no frac_bits candidate"
        raise last

    def start_session(self, spec: JobSpec, progress: Progress, deadline: float) -> list[PartyLink]:
        """Setup and key agreement with every participant; aborts them all on failure.

        After this, :meth:`collect_round` can run any number of rounds (fresh masks per
        round) until :meth:`close_session`.
        """
        links = [self._links[pid] for pid in spec.party_ids]
        try:
            progress("setup", "parties check the job and offer signed ephemeral keys", 0.2)
            offers_by_party = self._each(
                links, lambda link: link.setup(spec, self._budget(deadline)), deadline
            )
            offers = [offers_by_party[pid] for pid in spec.party_ids]
            progress("keys", "parties verify every signed key and derive pairwise seeds", 0.4)
            self._each(
                links,
                lambda link: link.agree(spec.job_id, offers, self._budget(deadline)),
                deadline,
            )
        except BaseException:
            self._abort_all(links, spec.job_id, "job failed")
            raise
        return links

    def close_session(self, spec: JobSpec, links: Sequence[PartyLink], reason: str) -> None:
        self._abort_all(links, spec.job_id, reason)

    def _charge(self, spec: JobSpec, plan: NoisePlan | None) -> None:
        budget = self._budgets.get(spec.dataset)
        if budget is not None and plan is None:
            raise PrivacyBudgetError(
                f"coordinator: dataset {spec.dataset!r} has a privacy budget: only "
                "differentially private queries may read it (give an epsilon: --epsilon, or "
                "epsilon= in Python)"
            )
        if plan is not None and self._ledger is not None:
            self._ledger.charge(
                spec.dataset,
                spec.job_id,
                plan.cost,
                budget.budget() if budget else None,
                who="coordinator: ",
            )

    # --- stages ------------------------------------------------------------------------

    def _select(self, query: Query) -> list[PartyLink]:
        if not query.parties:
            return [self._links[pid] for pid in sorted(self._links)]
        unknown = sorted(set(query.parties) - set(self._links))
        if unknown:
            raise QueryError(f"unknown parties {unknown}; configured: {sorted(self._links)}")
        return [self._links[pid] for pid in sorted(set(query.parties))]

    def _build_spec(
        self,
        job_id: str,
        query: Query,
        schemas: dict[str, list[DatasetInfo]],
        client: ClientAuth | None = None,
    ) -> JobSpec:
        datasets: dict[str, DatasetInfo] = {}
        for pid, infos in schemas.items():
            found = next((d for d in infos if d.name == query.dataset), None)
            if found is None:
                raise QueryError(f"unknown dataset {query.dataset!r} at party {pid!r}")
            datasets[pid] = found
        _mirror_policies(query, datasets)
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
            undeclared: list[str] = []  # parties that declare no bounds for the column
            for pid, info in datasets.items():
                schema = next((c for c in info.columns if c.name == column), None)
                if schema is None:
                    raise QueryError(
                        f"unknown column {column!r} in dataset {query.dataset!r} at party {pid!r}"
                    )
                declared.add((schema.lo, schema.hi))
                if schema.lo is None or schema.hi is None:
                    undeclared.append(pid)
            lo, hi = next(iter(declared))
            if query.statistic is Statistic.HISTOGRAM:
                # Values are clamped into the first/last bin: the edges are the bounds.
                bounds.append(ColumnBound(column, query.bin_edges[0], query.bin_edges[-1]))
            elif column in given:
                bounds.append(given[column])
            elif len(declared) == 1 and lo is not None and hi is not None:
                bounds.append(ColumnBound(column, lo, hi))
            elif len(declared) > 1 and undeclared:
                raise QueryError(
                    f"party {', '.join(sorted(undeclared))} declares no bounds for column "
                    f"{column!r} (other parties do); give bounds in the query (CLI: --bounds "
                    "LO:HI; Python: bounds=)"
                )
            elif len(declared) > 1:
                raise QueryError(
                    f"parties declare different bounds for column {column!r}; give bounds in "
                    "the query (CLI: --bounds LO:HI; Python: bounds=)"
                )
            else:
                raise QueryError(
                    f"no bounds for column {column!r}: give bounds in the query (CLI: --bounds "
                    "LO:HI; Python: bounds=) or declare lo/hi in the parties' dataset schema"
                )
        lengths = {d.vector_length for d in datasets.values()}
        if wanted_kind == "vector" and len(lengths) != 1:
            raise QueryError(f"vector dataset {query.dataset!r} has different lengths at parties")
        privacy = None
        if query.noise is not NoiseMode.NONE:
            n = len(datasets)
            colluders = n - 1 if self._colluders is None else self._colluders
            privacy = PrivacySpec(query.noise, query.epsilon, query.delta, colluders)
        return JobSpec(
            privacy=privacy,
            job_id=job_id,
            statistic=query.statistic,
            dataset=query.dataset,
            columns=tuple(bounds),
            frac_bits=self._default_frac_bits if query.frac_bits is None else query.frac_bits,
            participants=tuple(
                Participant(pid, datasets[pid].max_rows) for pid in sorted(datasets)
            ),
            vector_length=lengths.pop() if wanted_kind == "vector" else 0,
            training=query.training,
            bin_edges=query.bin_edges,
            client=client,
        )

    def collect_round(
        self,
        spec: JobSpec,
        links: Sequence[PartyLink],
        round_id: int,
        length: int,
        deadline: float,
        round_input: np.ndarray | None = None,
    ) -> RingVector:
        """One round: every party's masked share, summed; revealed only when all are complete.

        ``round_input`` is public per-round data sent to every party (e.g. the current model
        of a training job).
        """
        aggregator = ShareAggregator(spec.party_ids, length)

        def pull(link: PartyLink) -> None:
            for offset, words in link.contribute(
                spec.job_id,
                round_id,
                length,
                max(0.001, deadline - time.monotonic()),
                round_input,
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


#: The most fractional bits a query without ``frac_bits`` gets (precision ~1e-12), and with
#: differential privacy (where the noise is far above the rounding anyway).
AUTO_FRAC_BITS_MAX = 40
AUTO_FRAC_BITS_MAX_DP = 24
_PRECISION_STATISTICS = frozenset(
    {Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE, Statistic.VECTOR_SUM}
)


def _mirror_policies(query: Query, datasets: Mapping[str, DatasetInfo]) -> None:
    """Refuse early what the parties would refuse from their published status and policy.

    The parties' own checks are the ones that count; this only saves a round trip and gives
    the client the same public reason.
    """
    parties = sorted(datasets)
    dp = query.noise is not NoiseMode.NONE
    for pid, info in sorted(datasets.items()):
        if not info.available:
            raise QueryError(f"dataset {query.dataset!r} is unavailable at party {pid!r}")
        for column in info.columns:
            if column.name in query.columns and not column.available:
                raise QueryError(
                    f"column {column.name!r} of dataset {query.dataset!r} is unavailable at "
                    f"party {pid!r}"
                )
        if info.participation == "dp-only" and not dp:
            raise QueryError(
                f"dataset {query.dataset!r} is dp-only at party {pid!r}: every release must be "
                "differentially private (give an epsilon: --epsilon, or epsilon= in Python)"
            )
        if info.participation == "cohort" and info.cohort and list(info.cohort) != parties:
            raise QueryError(
                f"party {pid!r} answers dataset {query.dataset!r} only for its whole cohort "
                f"{list(info.cohort)} (participation policy); this job has {parties}"
            )
        if info.min_parties and len(parties) < info.min_parties:
            raise QueryError(
                f"party {pid!r} needs at least {info.min_parties} participating parties for "
                f"dataset {query.dataset!r} (min_parties)"
            )
        bins = len(query.bin_edges) - 1
        if query.statistic is Statistic.HISTOGRAM and info.max_bins and bins > info.max_bins:
            raise QueryError(
                f"histogram of {bins} bins: party {pid!r} allows at most {info.max_bins} for "
                f"dataset {query.dataset!r} (max_bins)"
            )


def suppress_small_cells(counts: np.ndarray, min_count: int) -> np.ndarray:
    """Exact counts in ``(0, min_count)`` become NaN (DataSHIELD's ``nfilter.tab`` rule).

    A client-facing disclosure control: it stops an honest coordinator from handing a client
    a cell that singles out one or two rows. It is not a defence against a curious
    coordinator, which sees the exact counts (the parties' max_bins policy and DP are).
    """
    small = (counts > 0) & (counts < min_count)
    return np.where(small, np.nan, counts)


#: What a reported sigma / error bound is (``NoiseOutcome.error_kind``).
EXACT = "exact"  # the noise's own distribution: sigma is its standard deviation
DELTA_METHOD = "delta-method"  # first-order propagation of every noise through a ratio
UPPER_BOUND = "upper bound"  # a proven bound on the error's scale, not an estimate


def _noise_outcome(
    spec: JobSpec, plan: NoisePlan, decoded: np.ndarray, released: np.ndarray | None = None
) -> NoiseOutcome:
    """Noise sigma, a 95% error bound and what kind of number they are, per released value.

    ``decoded`` is the noisy revealed vector and ``released`` the values returned; using them
    is post-processing of the noisy release (no privacy cost). Sums, counts and histograms
    carry one noise each: sigma is its exact standard deviation (``exact``). Means and
    variances are ratios of noisy sums: sigma propagates *every* noise, the count's included,
    to first order at the released point (``delta-method``). The 95% bounds are proven
    (exact tails, or a union bound over the noises for ratios) either way.
    """
    scale = float(1 << spec.frac_bits)
    privacy = plan.privacy

    def bound(group: NoiseGroup, confidence: Fraction) -> float:
        if group.laplace_scale is not None:
            # Discrete Laplace: P(|Z| >= k) <= 2 exp(-k/t).
            return float(group.laplace_scale) * math.log(2 / float(1 - confidence))
        return dp.error_bound(plan.total_variance(group), confidence)

    def sd(group: NoiseGroup) -> float:
        if group.laplace_scale is not None:
            # Discrete Laplace, P(k) ~ exp(-|k|/t): variance 2p/(1-p)^2 with p = exp(-1/t).
            inv_t = 1 / float(group.laplace_scale)
            return math.sqrt(2 * math.exp(-inv_t)) / -math.expm1(-inv_t) / scale
        return math.sqrt(float(plan.total_variance(group))) / scale

    sigmas: list[float] = []
    bounds: list[float] = []
    kinds: list[str] = []
    if spec.statistic is Statistic.HISTOGRAM:
        # Every bin gets the same noise: one sigma and one error bound (per bin).
        (bins,) = plan.groups
        sigmas.append(sd(bins))
        bounds.append(bound(bins, Fraction(95, 100)) / scale)
        kinds.append(EXACT)
    elif spec.statistic is Statistic.VARIANCE:
        centred, squares, count = plan.groups
        # Three noises, each within its 98.33% bound (union bound: 95% together). The error of
        # (S2 - S1^2/n)/(n-1) is at most (e2 + 2 h e1 + e1^2/n + h^2 eN) / (n - 1 - eN).
        third = Fraction(1, 3)
        e1 = bound(centred, 1 - third * Fraction(5, 100)) / scale
        e2 = bound(squares, 1 - third * Fraction(5, 100)) / scale
        e_n = bound(count, 1 - third * Fraction(5, 100)) / scale
        noisy_n = max(2.0, float(decoded[-1]))
        s1, s2, s_n = sd(centred), sd(squares), sd(count)
        for i, column in enumerate(spec.columns):
            half = (column.hi - column.lo) / 2
            # V = (S2 - S1^2/n)/(n-1): dV/dS2 = 1/(n-1), dV/dS1 = -2 c/(n-1) with c = S1/n the
            # centred mean, dV/dn = (c^2 - V)/(n-1); c from the noisy S1, V the released value.
            c = min(half, abs(float(decoded[i]) / noisy_n))
            v = float(released[i]) if released is not None else half * half
            sigmas.append(
                math.sqrt(s2**2 + (2 * c * s1) ** 2 + ((c * c - v) * s_n) ** 2) / (noisy_n - 1)
            )
            worst = e2 + 2 * half * e1 + e1 * e1 / noisy_n + half * half * e_n
            bounds.append(min(half * half, worst / max(1.0, noisy_n - 1 - e_n)))
            kinds.append(DELTA_METHOD)
    elif spec.statistic is Statistic.MEAN:
        sums, count = plan.groups
        noisy_n = max(1.0, float(decoded[-1]))
        # Both noises within their 97.5% bounds (union bound: 95% together).
        e_sum = bound(sums, Fraction(975, 1000)) / scale
        e_count = bound(count, Fraction(975, 1000)) / scale
        s_sum, s_count = sd(sums), sd(count)
        for i, column in enumerate(spec.columns):
            half = (column.hi - column.lo) / 2
            # m + S/n: dM/dS = 1/n, dM/dn = -(S/n)/n; S/n (the centred mean) from the noisy
            # centred sum, at most h in magnitude.
            c = min(half, abs(float(decoded[i]) / noisy_n))
            sigmas.append(math.sqrt(s_sum**2 + (c * s_count) ** 2) / noisy_n)
            bounds.append((e_sum + half * e_count) / max(1.0, noisy_n - e_count))
            kinds.append(DELTA_METHOD)
    else:
        for group in plan.groups:
            for _ in range(group.start, group.stop):
                sigmas.append(sd(group))
                bounds.append(bound(group, Fraction(95, 100)) / scale)
                kinds.append(EXACT)
    at_delta = privacy.delta if privacy.delta > 0 else 1e-12
    return NoiseOutcome(
        noise=privacy.noise.value,
        epsilon=privacy.epsilon,
        delta=privacy.delta,
        epsilon_spent=float(plan.cost.epsilon(at_delta))
        if privacy.delta > 0
        else float(plan.cost.pure_epsilon_total),
        rho_spent=float(plan.cost.rho),
        sigma=tuple(sigmas),
        error_bound_95=tuple(bounds),
        error_kind=tuple(kinds),
    )


#: float64's relative rounding, doubled (generous): decoding and post-processing in floats.
_FLOAT_EPS = 2.0**-52


def value_tolerances(spec: JobSpec) -> tuple[float, ...]:
    """Worst-case fixed-point error of each released value, one per label, from public
    limits only (the spec's bounds, ``frac_bits`` and row limits). Rounding noise (DP) is
    reported separately (:class:`NoiseOutcome`)."""
    return _tolerances_of(
        spec.statistic,
        [(b.lo, b.hi) for b in spec.columns],
        spec.frac_bits,
        spec.total_max_rows,
        len(spec.participants),
    )


def _tolerances_of(
    statistic: Statistic,
    bounds: Sequence[tuple[float, float]],
    frac_bits: int,
    total_rows: int,
    parties: int,
) -> tuple[float, ...]:
    half_step = resolution(frac_bits) / 2
    if statistic in (Statistic.COUNT, Statistic.HISTOGRAM):
        return (0.0,)  # counts are exact; one label
    if statistic is Statistic.VARIANCE:
        # (S2 - S1^2/n)/(n-1) with |dS1|, |dS2| <= n half_step, |S1/n| <= h and n/(n-1) <= 2
        # (n >= 2); float rounding of S2 and S1^2/n (each at most n h^2) adds <= 32 u h^2.
        out = []
        for lo, hi in bounds:
            half = (hi - lo) / 2
            out.append(half_step * (2 + 4 * half + 2 * half_step) + 16 * _FLOAT_EPS * half * half)
        return tuple(out)
    if statistic is Statistic.MEAN:
        return tuple(half_step + 4 * _FLOAT_EPS * max(abs(lo), abs(hi)) for lo, hi in bounds)
    if statistic is Statistic.VECTOR_SUM:
        (lo, hi), *_ = bounds
        return (parties * half_step + 2 * _FLOAT_EPS * parties * max(abs(lo), abs(hi)),)
    if statistic is Statistic.SUM:
        return tuple(
            total_rows * (half_step + 2 * _FLOAT_EPS * max(abs(lo), abs(hi))) for lo, hi in bounds
        )
    return (total_rows * half_step,) * max(1, len(bounds))


def tolerances_from_spec_json(spec: Mapping[str, object]) -> tuple[float, ...]:
    """:func:`value_tolerances` of a stored job spec (its canonical JSON); () for training
    jobs or a spec that cannot be read (callers fall back to the single tolerance)."""
    try:
        statistic = Statistic(str(spec["statistic"]))
        if statistic is Statistic.TRAIN:
            return ()
        columns = spec["columns"]
        participants = spec["participants"]
        assert isinstance(columns, list) and isinstance(participants, list)
        return _tolerances_of(
            statistic,
            [(float(c["lo"]), float(c["hi"])) for c in columns],
            int(spec["frac_bits"]),  # type: ignore[call-overload]
            sum(int(p["max_rows"]) for p in participants),
            len(participants),
        )
    except (KeyError, TypeError, ValueError, AssertionError):
        return ()


def _tolerance(spec: JobSpec) -> float:
    """The largest per-value tolerance (the single number older clients read)."""
    return max(value_tolerances(spec), default=0.0)
