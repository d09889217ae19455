"""Job orchestration: describe -> key setup -> round -> reconstruct -> decode -> post-process.

Transport-agnostic: it talks to parties through :class:`PartyLink` (gRPC in production, an
in-process runtime in unit tests). The coordinator never holds a partial set of shares in a
revealable form: :class:`ShareAggregator` refuses to reveal until every participant's share
arrived complete, and any failure aborts the job with nothing revealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from mpc.config import BudgetConfig
from mpc.coordinator.job_spec import AUTO_FRAC_BITS_MAX as AUTO_FRAC_BITS_MAX
from mpc.coordinator.job_spec import AUTO_FRAC_BITS_MAX_DP as AUTO_FRAC_BITS_MAX_DP
from mpc.coordinator.job_spec import SpecBuilderMixin
from mpc.coordinator.outcome import DELTA_METHOD as DELTA_METHOD
from mpc.coordinator.outcome import EXACT as EXACT
from mpc.coordinator.outcome import UPPER_BOUND as UPPER_BOUND
from mpc.coordinator.outcome import NoiseOutcome as NoiseOutcome
from mpc.coordinator.outcome import _noise_outcome as _noise_outcome
from mpc.coordinator.outcome import _tolerance, suppress_cells
from mpc.coordinator.outcome import suppress_small_cells as suppress_small_cells
from mpc.coordinator.outcome import tolerances_from_spec_json as tolerances_from_spec_json
from mpc.coordinator.outcome import value_tolerances as value_tolerances
from mpc.coordinator.party_cache import PartyCache, PartyView
from mpc.errors import MpcError, PartyFailedError, PrivacyBudgetError, QueryError
from mpc.ledger import BudgetStatus, Ledger
from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.query import Query as Query
from mpc.protocol.query import query_from_json as query_from_json
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.secure_sum import ShareAggregator, SignedKeyOffer
from mpc.protocol.spec import ClientAuth, JobSpec
from mpc.ring import DEFAULT_FRAC_BITS, RingVector, decode
from mpc.stats import definition
from mpc.stats.privacy import NoisePlan, add_noise

log = logging.getLogger(__name__)
T = TypeVar("T")


def _unavailable(schemas: Sequence[DatasetInfo], dataset: str) -> bool:
    info = next((d for d in schemas if d.name == dataset), None)
    return info is not None and (not info.available or not all(c.available for c in info.columns))


class PartyLink(Protocol):
    party_id: str
    #: Changes whenever the connection to the party may have been re-established.
    generation: int

    def describe(self, timeout: float) -> list[DatasetInfo]: ...

    def view(self, timeout: float) -> PartyView: ...

    def query(
        self, spec: JobSpec, keys: Sequence[SignedEpochKey], length: int, timeout: float
    ) -> Iterator[tuple[int, RingVector]]: ...

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
class Outcome:
    spec: JobSpec
    labels: list[str]
    values: np.ndarray
    tolerance: float  # the largest of ``tolerances``
    noise: NoiseOutcome | None = None
    #: Worst-case fixed-point error per label (:func:`value_tolerances`).
    tolerances: tuple[float, ...] = ()


Progress = Callable[[str, str, float], None]


class JobRunner(SpecBuilderMixin):
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
        self.cache = PartyCache()

    def run(
        self, job_id: str, query: Query, progress: Progress, client: ClientAuth | None = None
    ) -> Outcome:
        """Run one query job; ``client`` is the client's signed query, passed on to every
        party unchanged (they verify it themselves).

        With every participant's schemas and epoch key at hand (:class:`PartyCache`), the
        job is one ``Query`` call per party; otherwise (a party that offers no epoch key)
        it falls back to setup, key agreement and one round.
        """
        deadline = time.monotonic() + self._job_timeout
        query.validate()
        selected = self._select(query)
        try:
            schemas, keys = self._views(selected, query.dataset, progress, deadline)
            spec, plan = self._precise_spec(job_id, query, schemas, client)
            stat = definition(spec.statistic)
            self._charge(spec, plan)
            length = stat.output_length(spec)
            epoch_keys = [keys[pid] for pid in spec.party_ids if pid in keys]
            if len(epoch_keys) == len(spec.party_ids):
                progress("round", f"collecting masked shares of {length} words", 0.6)
                links = [self._links[pid] for pid in spec.party_ids]
                revealed = self.query_round(spec, links, epoch_keys, length, deadline)
            else:
                revealed = self._session_round(spec, length, progress, deadline)
        except BaseException:
            self.cache.drop(link.party_id for link in selected)  # ask them afresh next time
            raise
        if plan is not None and not plan.distributed:
            progress("noise", "adding central noise", 0.85)
            revealed = add_noise(revealed, plan.sample(revealed.size))
        progress("reveal", "decoding the aggregate", 0.9)
        decoded = decode(revealed, spec.frac_bits)
        values = stat.finish(spec, decoded)
        if plan is None:
            values = suppress_cells(spec, decoded, values, self._min_cell_count)
        noise = _noise_outcome(spec, plan, decoded, values) if plan else None
        tolerances = value_tolerances(spec)
        return Outcome(spec, stat.labels(spec), values, _tolerance(spec), noise, tolerances)

    def _views(
        self, selected: Sequence[PartyLink], dataset: str, progress: Progress, deadline: float
    ) -> tuple[dict[str, list[DatasetInfo]], dict[str, SignedEpochKey]]:
        """Every selected party's schemas and epoch key: from the cache, asking only the
        parties whose entry is missing or stale (concurrently). A held schema that says
        ``dataset`` is unavailable is asked again rather than trusted: the file may have been
        fixed since (a stale *available* needs no such care: the party refuses itself)."""
        schemas: dict[str, list[DatasetInfo]] = {}
        keys: dict[str, SignedEpochKey] = {}
        stale: list[PartyLink] = []
        for link in selected:
            held = self.cache.schemas(link.party_id)
            key = self.cache.epoch_key(link.party_id, link.generation)
            if held is None or key is None or _unavailable(held, dataset):
                stale.append(link)
            else:
                schemas[link.party_id], keys[link.party_id] = held, key
        if stale:
            progress("describe", f"asking {len(stale)} parties for their schemas", 0.05)
            views = self._each(stale, lambda link: link.view(self._budget(deadline)), deadline)
            for pid, view in views.items():
                self.cache.put(pid, view)
                schemas[pid] = view.schemas
                if view.epoch_key is not None:
                    keys[pid] = view.epoch_key
        return schemas, keys

    def _session_round(
        self, spec: JobSpec, length: int, progress: Progress, deadline: float
    ) -> RingVector:
        """The per-job flow: setup, key agreement, one round, close."""
        links = self.start_session(spec, progress, deadline)
        try:
            progress("round", f"collecting masked shares of {length} words", 0.6)
            revealed = self.collect_round(spec, links, 0, length, deadline)
        except BaseException:
            self._abort_all(links, spec.job_id, "job failed")
            raise
        self._abort_all(links, spec.job_id, "job finished")
        return revealed

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

        def pull(link: PartyLink) -> Iterator[tuple[int, RingVector]]:
            timeout = max(0.001, deadline - time.monotonic())
            return link.contribute(spec.job_id, round_id, length, timeout, round_input)

        return self._sum_shares(spec, links, length, deadline, pull)

    def query_round(
        self,
        spec: JobSpec,
        links: Sequence[PartyLink],
        keys: Sequence[SignedEpochKey],
        length: int,
        deadline: float,
    ) -> RingVector:
        """A whole query: one ``Query`` call per party with every participant's epoch key."""

        def pull(link: PartyLink) -> Iterator[tuple[int, RingVector]]:
            return link.query(spec, keys, length, max(0.001, deadline - time.monotonic()))

        return self._sum_shares(spec, links, length, deadline, pull)

    def _sum_shares(
        self,
        spec: JobSpec,
        links: Sequence[PartyLink],
        length: int,
        deadline: float,
        shares: Callable[[PartyLink], Iterator[tuple[int, RingVector]]],
    ) -> RingVector:
        aggregator = ShareAggregator(spec.party_ids, length)

        def pull(link: PartyLink) -> None:
            for offset, words in shares(link):
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
