"""The party runtime: checks jobs against local data and limits, runs sessions.

Transport-agnostic: the gRPC servicer converts messages and calls these methods, and tests
call them directly. Party-side limits are enforced here, by the data owner's own code: every
value is clamped to the job's declared bounds (in :mod:`mpc.stats`), and a job is refused
when this party's dataset is over its configured row limit or the spec misstates that limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

from mpc.config import DatasetConfig, PartyConfig
from mpc.errors import (
    ConfigError,
    InputDataError,
    PrivacyBudgetError,
    ProtocolError,
    QueryError,
)
from mpc.identity import Identity
from mpc.ledger import BudgetStatus, Ledger
from mpc.party.data import DataStore
from mpc.protocol.schema import ColumnInfo, DatasetInfo
from mpc.protocol.secure_sum import PartySession, SignedKeyOffer
from mpc.protocol.spec import JobSpec, NoiseMode, Statistic
from mpc.ring import FloatVector, RingVector
from mpc.sharing import CHUNK_WORDS, masked_chunks
from mpc.stats import EncodedVector, definition
from mpc.stats.privacy import NoisePlan, add_noise, plan_noise

log = logging.getLogger(__name__)

#: Sessions not finished within this time are dropped (their keys with them).
SESSION_TTL_SECONDS = 600.0


class PartyRuntime:
    def __init__(self, config: PartyConfig, identity: Identity) -> None:
        if identity.name != config.party_id:
            raise ConfigError(
                f"config says this party is {config.party_id!r} but its certificate names "
                f"{identity.name!r}"
            )
        self.config = config
        self.party_id = config.party_id
        self._identity = identity
        self._store = DataStore(config.datasets)
        self._ledger = Ledger(config.ledger) if config.ledger is not None else None
        self._plans: dict[str, NoisePlan] = {}
        self._train_rounds: dict[str, int] = {}
        self._sessions: dict[str, tuple[float, PartySession]] = {}
        self._lock = threading.Lock()

    # --- public schema -------------------------------------------------------------------

    def describe(self) -> list[DatasetInfo]:
        infos = []
        for dataset in self.config.datasets:
            declared = {c.name: c for c in dataset.columns}
            try:
                names = self._store.columns_of(dataset.name)
                length = self._store.vector(dataset.name).size if dataset.kind == "vector" else 0
            except InputDataError as exc:
                log.warning("dataset %r is not readable: %s", dataset.name, exc)
                names, length = list(declared), 0
            columns = tuple(
                ColumnInfo(
                    name,
                    declared[name].lo if name in declared else None,
                    declared[name].hi if name in declared else None,
                    declared[name].description if name in declared else "",
                )
                for name in names
            )
            infos.append(
                DatasetInfo(
                    dataset.name,
                    dataset.kind,
                    columns,
                    dataset.max_rows,
                    length,
                    dataset.description,
                )
            )
        return infos

    # --- job stages ----------------------------------------------------------------------

    def setup(self, spec: JobSpec) -> SignedKeyOffer:
        """Check the job against local data and limits, then offer a signed ephemeral key.

        Privacy comes first: the job's cost is computed here from the spec alone and charged
        durably to this party's own ledger before any data is read, so a job over budget is
        refused without touching data, and nothing is refunded afterwards.
        """
        dataset = self._store.config(spec.dataset)
        plan = self._check_privacy(spec, dataset)
        me = spec.participant(self.party_id)
        if me.max_rows != dataset.max_rows:
            raise QueryError(
                f"job states max_rows {me.max_rows} for party {self.party_id!r}, "
                f"but its limit for {spec.dataset!r} is {dataset.max_rows}"
            )
        rows = self._rows(spec)
        if rows > dataset.max_rows:
            raise QueryError(
                f"party {self.party_id!r} refuses: dataset {spec.dataset!r} is over its row "
                f"limit max_rows={dataset.max_rows}"
            )
        session = PartySession(spec, self._identity)
        with self._lock:
            self._expire_locked()
            if spec.job_id in self._sessions:
                raise ProtocolError(f"job {spec.job_id} was already set up on this party")
            self._sessions[spec.job_id] = (time.monotonic(), session)
            if plan is not None:
                self._plans[spec.job_id] = plan
        log.info("job %s: set up %s on %r", spec.job_id, spec.statistic.value, spec.dataset)
        return session.offer()

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer]) -> None:
        self._session(job_id).agree(offers)
        log.info("job %s: verified %d key offers", job_id, len(offers))

    def contribute(
        self, job_id: str, round_id: int, round_input: FloatVector | None = None
    ) -> tuple[int, Iterator[tuple[int, RingVector]]]:
        """Compute the local statistic and return its length and masked chunks in order."""
        session = self._session(job_id)
        spec = session.spec
        if spec.training is not None and spec.privacy is not None:
            # The ledger was charged for exactly `rounds` noised rounds: refuse any more.
            with self._lock:
                used = self._train_rounds.get(job_id, 0)
                if used >= spec.training.rounds:
                    raise PrivacyBudgetError(
                        f"job {job_id}: all {spec.training.rounds} charged training rounds "
                        "were already contributed"
                    )
                self._train_rounds[job_id] = used + 1
        statistic = definition(spec.statistic).local(spec, self._store, round_input)
        with self._lock:
            plan = self._plans.get(job_id)
        if plan is not None and plan.distributed:
            # This party's share of the noise, sized from the verified spec, goes in before
            # masking: nobody, the coordinator included, sees this party's exact statistic
            # or the exact aggregate.
            if isinstance(statistic, EncodedVector):
                statistic = statistic.full()
            statistic = add_noise(statistic, plan.sample(statistic.size))
        mask = session.round_mask(round_id)
        log.info("job %s: contributing round %d (%d words)", job_id, round_id, statistic.size)
        return statistic.size, masked_chunks(statistic, mask, CHUNK_WORDS)

    def abort(self, job_id: str) -> None:
        with self._lock:
            entry = self._sessions.pop(job_id, None)
            self._plans.pop(job_id, None)
            self._train_rounds.pop(job_id, None)
        if entry:
            entry[1].close()
            log.info("job %s: closed", job_id)

    def ledger_status(self) -> list[BudgetStatus]:
        """Spent and remaining budget of every dataset (public numbers only)."""
        statuses = []
        for dataset in self.config.datasets:
            budget = dataset.budget.budget() if dataset.budget else None
            if self._ledger is None:
                statuses.append(BudgetStatus(dataset.name, 0, 0.0, 0.0, None, None, None))
            else:
                statuses.append(self._ledger.status(dataset.name, budget))
        return statuses

    # --- helpers -------------------------------------------------------------------------

    def _check_privacy(self, spec: JobSpec, dataset: DatasetConfig) -> NoisePlan | None:
        privacy = spec.privacy
        if dataset.budget is not None:
            if privacy is None:
                raise PrivacyBudgetError(
                    f"dataset {spec.dataset!r} has a privacy budget: only differentially "
                    "private jobs may read it (pass --epsilon)"
                )
            if privacy.noise is NoiseMode.CENTRAL and not dataset.budget.allow_central:
                raise PrivacyBudgetError(
                    f"dataset {spec.dataset!r} requires distributed noise (central noise "
                    "lets the coordinator see the exact aggregate); use --noise distributed"
                )
        if (
            privacy is not None
            and privacy.noise is NoiseMode.DISTRIBUTED
            and privacy.colluders < self.config.min_colluders
        ):
            raise PrivacyBudgetError(
                f"refuses distributed noise sized for {privacy.colluders} colluders; it "
                f"requires at least {self.config.min_colluders}"
            )
        plan = plan_noise(spec)
        if plan is not None and self._ledger is not None:
            budget = dataset.budget.budget() if dataset.budget else None
            self._ledger.charge(spec.dataset, spec.job_id, plan.cost, budget)
            log.info(
                "job %s: charged rho %.6g to %r", spec.job_id, float(plan.cost.rho), spec.dataset
            )
        return plan

    def _rows(self, spec: JobSpec) -> int:
        if spec.statistic is Statistic.VECTOR_SUM:
            length = self._store.vector(spec.dataset).size
            if length != spec.vector_length:
                raise QueryError(
                    f"dataset {spec.dataset!r} on party {self.party_id!r} has length {length}, "
                    f"the job expects {spec.vector_length}"
                )
            return 1
        columns = [c.column for c in spec.columns]
        return self._store.table(spec.dataset, columns).rows

    def _session(self, job_id: str) -> PartySession:
        with self._lock:
            entry = self._sessions.get(job_id)
        if entry is None:
            raise ProtocolError(f"job {job_id} is not set up on party {self.party_id!r}")
        return entry[1]

    def _expire_locked(self) -> None:
        now = time.monotonic()
        for job_id in [j for j, (t, _) in self._sessions.items() if now - t > SESSION_TTL_SECONDS]:
            self._sessions.pop(job_id)[1].close()
