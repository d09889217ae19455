"""A party's public-only job checks (no data is read): limits, the frame policy, the noise
floor and round inputs. :class:`mpc.party.runtime.PartyRuntime` applies them at setup."""

from __future__ import annotations

import numpy as np

from mpc.config import DatasetConfig
from mpc.errors import PrivacyBudgetError, QueryError
from mpc.protocol.rounds import MAX_WEIGHT
from mpc.protocol.spec import BINNED_STATISTICS, JobSpec, NoiseMode, Statistic
from mpc.protocol.where import check_frame_policy
from mpc.ring import FloatVector


def check_limits(spec: JobSpec, dataset: DatasetConfig, party_id: str) -> None:
    """The dataset's kind, row limit, least number of parties and histogram bin cap."""
    name = spec.dataset
    wanted_kind = "vector" if spec.statistic is Statistic.VECTOR_SUM else "table"
    if dataset.kind != wanted_kind:
        raise QueryError(
            f"dataset {name!r} is a {dataset.kind} dataset; {spec.statistic.value} needs a "
            f"{wanted_kind} dataset"
        )
    me = spec.participant(party_id)
    if me.max_rows != dataset.max_rows:
        raise QueryError(
            f"job states max_rows {me.max_rows} for party {party_id!r}, "
            f"but its limit for {name!r} is {dataset.max_rows}"
        )
    if len(spec.party_ids) < dataset.min_parties:
        raise QueryError(
            f"dataset {name!r} needs at least {dataset.min_parties} participating parties "
            "(min_parties)"
        )
    if spec.statistic in BINNED_STATISTICS:  # a quantile's fine histogram is one too
        bins = len(spec.bin_edges) - 1
        if bins > dataset.max_bins:
            raise QueryError(
                f"{spec.statistic.value} of {bins} bins: dataset {name!r} allows at most "
                f"{dataset.max_bins} (max_bins)"
            )


def check_frame(spec: JobSpec, dataset: DatasetConfig, party_id: str) -> None:
    """``where`` and ``group_by`` against this party's policy and declared categories:
    exact filtered or grouped releases only where the dataset allows them, categories
    only among the declared ones, comparisons and bins only on numeric columns, at most
    ``max_bins`` cells (groups times bins). Public: the spec and the config only."""
    check_frame_policy(
        dataset=spec.dataset,
        party=party_id,
        dp=spec.privacy is not None,
        columns=[c.column for c in spec.columns],
        where=spec.where,
        group_by=spec.group_by,
        bins=len(spec.bin_edges) - 1 if spec.statistic in BINNED_STATISTICS else 1,
        categories=categories(dataset),
        exact_filters=exact_filters(dataset),
        max_bins=dataset.max_bins,
    )


def check_noise(spec: JobSpec, dataset: DatasetConfig, min_colluders: int | None) -> None:
    """Budget rules and this party's own noise floor."""
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
    if privacy is not None and privacy.noise is NoiseMode.DISTRIBUTED:
        floor = min_colluders
        if floor is None:
            floor = len(spec.participants) - 1
        if privacy.colluders < floor:
            raise PrivacyBudgetError(
                f"refuses distributed noise sized for {privacy.colluders} colluders; it "
                f"requires at least {floor}"
            )


def categories(dataset: DatasetConfig) -> dict[str, tuple[str, ...]]:
    """Declared categories of the dataset's categorical columns (public config)."""
    return {c.name: tuple(c.categories) for c in dataset.columns if c.categories}


def exact_filters(dataset: DatasetConfig) -> bool:
    """May exact (non-DP) jobs filter or group the dataset? (off by default)"""
    return bool(dataset.exact_filters)


def cohort_refusal(spec: JobSpec, cohort: tuple[str, ...]) -> str:
    return (
        f"dataset {spec.dataset!r} is answered only for its whole cohort {list(cohort)} "
        f"(participation policy); this job has {list(spec.party_ids)}"
    )


def check_round_input(spec: JobSpec, round_input: FloatVector | None) -> None:
    """Public checks of a round's input: finite, and model weights within ``MAX_WEIGHT``."""
    if spec.training is None or round_input is None:
        return
    with np.errstate(all="ignore"):
        finite = bool(np.all(np.isfinite(round_input)))
        if not finite:
            raise QueryError("malformed training round input: values must be finite")
        p = len(spec.columns)  # d features + intercept
        weights = round_input[-p:] if round_input.size > 1 else round_input[:0]
        if weights.size and float(np.max(np.abs(weights))) > MAX_WEIGHT:
            raise QueryError(
                f"training round input refused: a model weight exceeds {MAX_WEIGHT:g} "
                "(the model diverged: lower lr)"
            )


__all__ = [
    "categories",
    "check_frame",
    "check_limits",
    "check_noise",
    "check_round_input",
    "cohort_refusal",
    "exact_filters",
]
