"""Public dataset schemas: what a party tells the coordinator about its data.

A schema holds names, declared bounds and the public row limit: never row counts or values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    lo: float | None
    hi: float | None
    description: str


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str
    columns: tuple[ColumnInfo, ...]
    max_rows: int
    vector_length: int
    description: str


__all__ = ["ColumnInfo", "DatasetInfo"]
