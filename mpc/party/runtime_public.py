"""What the party runtime decides from public information alone: its public schemas, the
dataset's participation policy (cohort pinning) and the public status of its datasets.

A mixin of :class:`mpc.party.runtime.PartyRuntime` (see that module for the rule these checks
enforce); every refusal here depends only on the signed spec, the party config and the public
dataset status, never on a row.
"""

from __future__ import annotations

import logging

from mpc.config import DatasetConfig, Participation, PartyConfig
from mpc.errors import ConfigError, InputDataError, PrivacyBudgetError, QueryError
from mpc.ledger import Ledger
from mpc.party.data import DataStore
from mpc.party.policy import categories, check_frame, check_limits, cohort_refusal, exact_filters
from mpc.protocol.schema import ColumnInfo, DatasetInfo
from mpc.protocol.spec import JobSpec

log = logging.getLogger("mpc.party.runtime")


class PublicChecksMixin:
    """Public schemas and public-only checks (the host class sets these attributes)."""

    config: PartyConfig
    party_id: str
    _store: DataStore
    _ledger: Ledger | None

    # --- public schema -------------------------------------------------------------------

    def describe(self) -> list[DatasetInfo]:
        """Public schemas with each dataset's public status and this party's policy."""
        infos = []
        for dataset in self.config.datasets:
            declared = {c.name: c for c in dataset.columns}
            available = self._store.available(dataset.name)
            names = self._store.columns_of(dataset.name) if available else list(declared)
            length = (
                self._store.vector(dataset.name).size
                if available and dataset.kind == "vector"
                else 0
            )
            columns = tuple(
                ColumnInfo(
                    name,
                    declared[name].lo if name in declared else None,
                    declared[name].hi if name in declared else None,
                    declared[name].description if name in declared else "",
                    available and self._store.column_available(dataset.name, name),
                    categories(dataset).get(name, ()),
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
                    available=available,
                    participation=dataset.mode,
                    cohort=self._cohort(dataset) or (),
                    min_parties=dataset.min_parties,
                    max_bins=dataset.max_bins,
                    exact_filters=exact_filters(dataset),
                )
            )
        return infos

    # --- public-only checks --------------------------------------------------------------

    def _check_policy(self, spec: JobSpec, dataset: DatasetConfig) -> None:
        """The dataset's participation policy (the defence against differencing)."""
        name = spec.dataset
        check_limits(spec, dataset, self.party_id)
        parties = spec.party_ids
        if dataset.mode == Participation.DP_ONLY:
            if spec.privacy is None:
                raise PrivacyBudgetError(
                    f"dataset {name!r} is dp-only: every release must be differentially "
                    "private (pass --epsilon)"
                )
        else:
            cohort = self._cohort(dataset)
            if cohort is None and dataset.cohort is None and self._ledger is None:
                raise ConfigError(
                    f"dataset {name!r} declares no cohort and this party has no state "
                    "database to pin one: set cohort = [...] or ledger = PATH in its config"
                )
            if cohort is not None and parties != cohort:
                raise QueryError(cohort_refusal(spec, cohort))
        if dataset.kind == "table":
            check_frame(spec, dataset, self.party_id)

    def _cohort(
        self, dataset: DatasetConfig, pin: tuple[str, ...] | None = None
    ) -> tuple[str, ...] | None:
        """The dataset's cohort: declared, or pinned durably (at first use, to ``pin``)."""
        if dataset.mode != Participation.COHORT:
            return None
        if dataset.cohort is not None:
            return dataset.cohort
        if self._ledger is None:
            return None
        pinned = self._ledger.pinned_cohort(dataset.name)
        if pinned is None and pin is not None:
            pinned = self._ledger.pin_cohort(dataset.name, pin)
            log.warning(
                "dataset %r: cohort pinned at first use to %s; only its operator can change "
                "it (declare cohort = [...] in the config)",
                dataset.name,
                list(pinned),
            )
        return pinned

    def _check_available(self, spec: JobSpec, dataset: DatasetConfig) -> None:
        """The dataset's public status (decided when the file was loaded, never per job)."""
        where = f"at party {self.party_id!r}"
        if not self._store.available(spec.dataset):
            raise InputDataError(f"dataset {spec.dataset!r} is unavailable {where}")
        if dataset.kind == "vector":
            length = self._store.vector(spec.dataset).size
            if length != spec.vector_length:
                raise QueryError(
                    f"dataset {spec.dataset!r} on party {self.party_id!r} has length {length}, "
                    f"the job expects {spec.vector_length}"
                )
            return
        known = set(self._store.columns_of(spec.dataset))
        used = [b.column for b in spec.columns]
        for column in dict.fromkeys([*used, *spec.frame.columns()]):
            if column not in known:
                raise InputDataError(f"dataset {spec.dataset!r} has no column {column!r} {where}")
            if not self._store.column_available(spec.dataset, column):
                raise InputDataError(
                    f"column {column!r} of dataset {spec.dataset!r} is unavailable {where}"
                )

    def _log_cohort_overrides(self) -> None:
        """An operator changes a pinned cohort by declaring one: say so in the log."""
        if self._ledger is None:
            return
        for dataset in self.config.datasets:
            pinned = self._ledger.pinned_cohort(dataset.name)
            if pinned is not None and dataset.cohort is not None and pinned != dataset.cohort:
                log.warning(
                    "dataset %r: the config declares cohort %s, replacing the cohort %s pinned "
                    "at first use",
                    dataset.name,
                    list(dataset.cohort),
                    list(pinned),
                )


__all__ = ["PublicChecksMixin"]
