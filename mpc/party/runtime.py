"""The party runtime: checks jobs against its own policy and public limits, runs sessions.

Transport-agnostic: the gRPC servicer converts messages and calls these methods, and tests
call them directly.

The rule this module enforces: **what leaves the party depends on its data only through the
masked (and, with DP, noised) share.** Every refusal below is decided from public
information only, before any row is read: the signed spec, this party's config and policy,
and the public status of its datasets (decided when the file is loaded, never per job):

* participation policy per dataset (:class:`mpc.config.Participation`): in *cohort* mode
  every job has exactly the cohort as participants (declared, or pinned durably at first
  use), so no two releases differ by one party; in *dp-only* mode every release is noised and
  charged to this party's ledger;
* at least ``min_parties`` participants, at most ``max_bins`` histogram bins (and cells of
  a grouped job: groups times bins);
* exact (non-DP) jobs with a ``where`` or ``group_by`` only where the dataset's config says
  ``exact_filters = true``; categories only among the declared ones, comparisons and bin
  edges only on numeric columns (:func:`mpc.protocol.where.check_frame_policy`);
* distributed noise sized for at least ``min_colluders`` colluders (default ``n - 1``): this
  party never adds less noise than its own policy implies;
* the ring headroom re-proved from the spec's bounds, ``frac_bits`` and row limits;
* the round schedule fixed by the spec (:mod:`mpc.protocol.rounds`), each round answered at
  most once, its public input bound into the round's mask keys;
* a DP job's charge written durably before anything is computed, one charge per job id;
* a one-call query (:meth:`PartyRuntime.query`) only with epoch keys it verified and one of
  its own live epochs, each job id answered at most once per epoch
  (:mod:`mpc.protocol.epochs`), checked before any budget is charged.

Once a job passes these checks, its computation cannot fail on any data: values are clamped
to the declared bounds, per-row arithmetic saturates and encoding saturates
(:func:`mpc.ring.encode_saturating`). An empty dataset contributes zeros.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from mpc.config import Participation, PartyConfig
from mpc.dp.accountant import Budget
from mpc.errors import (
    ConfigError,
    MpcError,
    PrivacyBudgetError,
    ProtocolError,
    QueryError,
)
from mpc.identity import Identity
from mpc.ledger import BudgetStatus, Ledger
from mpc.party.access import ReplayGuard, authenticate, authorise, client_ledger_key
from mpc.party.audit import ACCEPTED, REFUSED, AuditError, AuditLog, job_record
from mpc.party.data import DataStore
from mpc.party.policy import (
    check_noise,
    check_round_input,
    cohort_refusal,
)
from mpc.party.runtime_public import PublicChecksMixin
from mpc.protocol.epochs import EpochKeys, SignedEpochKey
from mpc.protocol.rounds import RoundTracker, round_kind
from mpc.protocol.secure_sum import PartySession, SignedKeyOffer
from mpc.protocol.spec import JobSpec
from mpc.ring import FloatVector, RingVector
from mpc.sharing import CHUNK_WORDS, PairwiseMask, masked_chunks
from mpc.stats import EncodedVector, definition
from mpc.stats.privacy import NoisePlan, add_noise, prove_headroom

log = logging.getLogger(__name__)

#: Sessions not finished within this time are dropped (their keys with them).
SESSION_TTL_SECONDS = 600.0
#: Job ids remembered in memory to refuse a second setup (DP job ids are in the ledger too).
SEEN_JOBS_LIMIT = 100_000


class _Job:
    """A set-up job: its key session, round tracker and noise plan."""

    def __init__(self, session: PartySession, plan: NoisePlan | None) -> None:
        self.session = session
        self.rounds = RoundTracker(session.spec)
        self.plan = plan
        self.started = time.monotonic()


class PartyRuntime(PublicChecksMixin):
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
        self._jobs: dict[str, _Job] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._replays = ReplayGuard(self._ledger)
        self._epochs = EpochKeys(identity)  # in memory only: a restart starts a new epoch
        self._lock = threading.Lock()
        self._audit = (
            AuditLog(config.audit_log, config.party_id) if config.audit_log is not None else None
        )
        self._log_cohort_overrides()

    # --- job stages ----------------------------------------------------------------------

    def setup(self, spec: JobSpec) -> SignedKeyOffer:
        """Check the job from public information only, charge its privacy cost, offer a key.

        Every check here reads the spec, this party's config and the public status of the
        dataset, never a row. Privacy comes before everything that follows: the cost is
        computed from the spec and charged durably to this party's own ledger, so a job over
        budget is refused without touching data, and nothing is refunded afterwards.

        Every job, accepted or refused, is recorded durably in the audit log (when kept,
        :mod:`mpc.party.audit`) before the party answers.
        """
        try:
            return self._setup(spec)
        except AuditError:
            raise  # the log cannot be written: nothing more to record
        except Exception as exc:
            self._audit_refusal(spec, exc)
            raise

    def _setup(self, spec: JobSpec) -> SignedKeyOffer:
        plan = self._admit(spec)
        session = PartySession(spec, self._identity)
        with self._lock:
            self._jobs[spec.job_id] = _Job(session, plan)
        log.info("job %s: set up %s on %r", spec.job_id, spec.statistic.value, spec.dataset)
        return session.offer()

    def query(
        self, spec: JobSpec, keys: Sequence[SignedEpochKey]
    ) -> tuple[int, Iterator[tuple[int, RingVector]]]:
        """A whole query in one call: check the spec, charge, compute, mask, stream.

        ``keys`` are every participant's signed epoch key (:mod:`mpc.protocol.epochs`): they
        are verified before anything else, so a stale key costs no budget and uses up no job
        id. The job id is then answered at most once in this party's epoch (and charged once,
        durably, when it is a DP job), like a per-job setup followed by its single round.
        Recorded in the audit log like :meth:`setup`.
        """
        try:
            if spec.training is not None:
                raise ProtocolError(
                    "a training job runs in rounds: it is set up with Setup and AgreeKeys"
                )
            if self.party_id not in spec.party_ids:
                raise ProtocolError(f"party {self.party_id!r} is not a participant of this job")
            epoch_job = self._epochs.prepare(spec.party_ids, spec.digest(), keys)
            plan = self._admit(spec, claim=epoch_job.epoch.claim)
        except AuditError:
            raise
        except Exception as exc:
            self._audit_refusal(spec, exc)
            raise
        return self._share(spec, plan, epoch_job.round_mask(0), 0, None)

    def epoch_key(self) -> SignedEpochKey:
        """This party's current signed epoch key (public), rotated when nearly used up."""
        return self._epochs.current()

    def _admit(self, spec: JobSpec, claim: Callable[[str], None] | None = None) -> NoisePlan | None:
        """Every check of a new job from public information, then its durable charge and
        audit record; ``claim`` records the job id in an epoch (under the same lock as the
        party's own record of job ids)."""
        dataset = self._store.config(spec.dataset)
        client = authenticate(
            spec,
            self._identity.ca_certificate,
            self._replays,
            required=self.config.require_signed_queries,
        )
        access = authorise(spec, dataset, client)
        self._check_policy(spec, dataset)
        check_noise(spec, dataset, self.config.min_colluders)
        plan = prove_headroom(spec)  # from the spec alone, before any row is read
        self._check_available(spec, dataset)
        if dataset.mode == Participation.COHORT and dataset.cohort is None:
            # Pin at first use (a concurrent first job may have pinned another set).
            cohort = self._cohort(dataset, pin=spec.party_ids)
            if cohort is not None and cohort != spec.party_ids:
                raise QueryError(cohort_refusal(spec, cohort))
        also: list[tuple[str, Budget | None]] = []
        with self._lock:
            self._expire_locked()
            if spec.job_id in self._seen:
                raise ProtocolError(f"job {spec.job_id} was already set up on this party")
            if claim is not None:
                claim(spec.job_id)
            self._remember_locked(spec.job_id)
        if access is not None and access.budget is not None and plan is not None:
            # The client's own budget on this dataset, charged with the dataset's: all or none.
            if self._ledger is None or client is None:
                raise ConfigError("a client budget needs this party's ledger")
            also = [(client_ledger_key(spec.dataset, client), access.budget.budget())]
        if plan is not None and self._ledger is not None:
            budget = dataset.budget.budget() if dataset.budget else None
            self._ledger.charge(spec.dataset, spec.job_id, plan.cost, budget, also=also)
            log.info(
                "job %s: charged rho %.6g to %r", spec.job_id, float(plan.cost.rho), spec.dataset
            )
        if self._audit is not None:  # durable before anything leaves this party
            charged = plan is not None and self._ledger is not None
            self._audit.append(
                job_record(self.party_id, spec, ACCEPTED, plan=plan, charged=charged)
            )
        return plan

    def agree(self, job_id: str, offers: Sequence[SignedKeyOffer]) -> None:
        self._job(job_id).session.agree(offers)
        log.info("job %s: verified %d key offers", job_id, len(offers))

    def contribute(
        self, job_id: str, round_id: int, round_input: FloatVector | None = None
    ) -> tuple[int, Iterator[tuple[int, RingVector]]]:
        """Compute the local statistic and return its length and masked chunks in order.

        The round must be the next one the signed spec's schedule allows; its public input
        is checked without data and bound into the round's mask keys.
        """
        job = self._job(job_id)
        spec = job.session.spec
        # The file may have changed since setup: its public status decides, with a public text.
        self._check_available(spec, self._store.config(spec.dataset))
        kind = round_kind(round_input)
        check_round_input(spec, round_input)
        job.session.require_agreed()  # before the round is used up
        job.rounds.admit(round_id, kind)
        raw_input = b"" if round_input is None else np.asarray(round_input, "<f8").tobytes()
        mask = job.session.round_mask(round_id, raw_input)
        return self._share(spec, job.plan, mask, round_id, round_input)

    def _share(
        self,
        spec: JobSpec,
        plan: NoisePlan | None,
        mask: PairwiseMask,
        round_id: int,
        round_input: FloatVector | None,
    ) -> tuple[int, Iterator[tuple[int, RingVector]]]:
        """The local statistic (noised when the plan is distributed), masked, in chunks."""
        job_id = spec.job_id
        try:
            with np.errstate(all="ignore"):
                statistic = definition(spec.statistic).local(spec, self._store, round_input)
                if plan is not None and plan.distributed:
                    # This party's share of the noise, sized from the verified spec and its
                    # own policy, goes in before masking: nobody, the coordinator included,
                    # sees this party's exact statistic or the exact aggregate.
                    if isinstance(statistic, EncodedVector):
                        statistic = statistic.full()
                    statistic = add_noise(statistic, plan.sample(statistic.size))
        except (QueryError, PrivacyBudgetError, ProtocolError):
            raise  # raised only by checks of the spec and the round input: public
        except Exception as exc:
            # Every public check passed and the arithmetic saturates, so this is a bug, not a
            # property of the data: details to the operator, none to the coordinator.
            log.error(
                "job %s: computing the local statistic failed (%s)",
                job_id,
                type(exc).__name__,
                exc_info=True,
            )
            raise ProtocolError("internal error while computing the local statistic") from None
        log.info("job %s: contributing round %d (%d words)", job_id, round_id, statistic.size)
        return statistic.size, masked_chunks(statistic, mask, CHUNK_WORDS)

    def abort(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            job.session.close()
            log.info("job %s: closed", job_id)

    def ledger_status(self) -> list[BudgetStatus]:
        """Spent and remaining budget of every dataset (public numbers only); none when this
        party keeps no ledger (it records nothing, so it reports nothing rather than 0)."""
        if self._ledger is None:
            return []
        statuses = []
        for dataset in self.config.datasets:
            budget = dataset.budget.budget() if dataset.budget else None
            statuses.append(self._ledger.status(dataset.name, budget))
        return statuses

    # --- helpers -------------------------------------------------------------------------

    def _audit_refusal(self, spec: JobSpec, exc: Exception) -> None:
        """Record a refused job with its public reason (the text the coordinator gets)."""
        if self._audit is None:
            return
        if isinstance(exc, MpcError):
            reason, error = str(exc), type(exc).__name__
        else:  # its text could quote anything: the transport sends a fixed message too
            reason, error = "internal error; see the server log", "InternalError"
        self._audit.append(job_record(self.party_id, spec, REFUSED, reason=reason, error=error))

    def _job(self, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ProtocolError(f"job {job_id} is not set up on party {self.party_id!r}")
        return job

    def _remember_locked(self, job_id: str) -> None:
        self._seen[job_id] = None
        while len(self._seen) > SEEN_JOBS_LIMIT:
            self._seen.popitem(last=False)

    def _expire_locked(self) -> None:
        now = time.monotonic()
        for job_id in [
            j for j, job in self._jobs.items() if now - job.started > SESSION_TTL_SECONDS
        ]:
            self._jobs.pop(job_id).session.close()


__all__ = ["PartyRuntime"]
