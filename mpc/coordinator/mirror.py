"""The coordinator's mirror of the parties' published policies: it refuses early, with the
parties' own public reasons, what they would refuse (their checks are the ones that count)."""

from __future__ import annotations

from collections.abc import Mapping

from mpc.errors import QueryError
from mpc.protocol.query import Query
from mpc.protocol.schema import DatasetInfo
from mpc.protocol.spec import BINNED_STATISTICS, NoiseMode
from mpc.protocol.where import check_frame_policy


def mirror_policies(query: Query, datasets: Mapping[str, DatasetInfo]) -> None:
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
        if query.statistic in BINNED_STATISTICS and info.max_bins and bins > info.max_bins:
            raise QueryError(
                f"{query.statistic.value} of {bins} bins: party {pid!r} allows at most "
                f"{info.max_bins} for "
                f"dataset {query.dataset!r} (max_bins)"
            )
        if info.kind == "table":
            mirror_frame(query, pid, info)


def mirror_frame(query: Query, pid: str, info: DatasetInfo) -> None:
    """The party's frame policy (:func:`mpc.protocol.where.check_frame_policy`), from its
    published categories and ``exact_filters``: the same check and text as the party's."""
    frame_columns = [] if query.where is None else query.where.columns()
    frame_columns += [k.column for k in query.group_by]
    known = {c.name: c for c in info.columns}
    for column in dict.fromkeys(frame_columns):
        if column not in known:
            raise QueryError(
                f"unknown column {column!r} in dataset {query.dataset!r} at party {pid!r}"
            )
        if not known[column].available:
            raise QueryError(
                f"column {column!r} of dataset {query.dataset!r} is unavailable at party {pid!r}"
            )
    check_frame_policy(
        dataset=query.dataset,
        party=pid,
        dp=query.noise is not NoiseMode.NONE,
        columns=list(query.columns),
        where=query.where,
        group_by=query.group_by,
        bins=len(query.bin_edges) - 1 if query.statistic in BINNED_STATISTICS else 1,
        categories={c.name: c.categories for c in info.columns if c.categories},
        exact_filters=info.exact_filters,
        max_bins=info.max_bins,
    )


__all__ = ["mirror_frame", "mirror_policies"]
