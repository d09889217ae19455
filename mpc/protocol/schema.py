"""Public dataset schemas: what a party tells the coordinator about its data.

A schema holds names, declared bounds, the public row limit, the public status of the dataset
(available or not: decided when the party loads its file, never per job) and the party's
participation policy: never row counts or values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    lo: float | None
    hi: float | None
    description: str
    available: bool = True
    categories: tuple[str, ...] = ()  # declared categories of a categorical column


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str
    columns: tuple[ColumnInfo, ...]
    max_rows: int
    vector_length: int
    description: str
    available: bool = True
    categories: tuple[str, ...] = ()  # declared categories of a categorical column
    participation: str = "cohort"
    cohort: tuple[str, ...] = ()  # empty: not declared and not pinned yet
    min_parties: int = 2
    max_bins: int = 1024
    exact_filters: bool = False  # exact (non-DP) jobs may filter or group the dataset


__all__ = ["ColumnInfo", "DatasetInfo"]
