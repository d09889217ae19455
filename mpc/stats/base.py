"""What a statistic is: the contract between the registry (:mod:`mpc.stats`), the parties,
the coordinator's noise planning (:mod:`mpc.stats.privacy`) and the client's tables.

A statistic is *local aggregate -> secure sum -> public post-processing*. Its entry says how
long its vector is, what one row can add to each entry (the headroom proof), how a party
computes it (through :meth:`LocalData.aggregate` for frame statistics, so every source --
CSV, Parquet, DuckDB, PostgreSQL -- computes the same words), its DP sensitivity groups, how
the revealed sum becomes the result, and how that result reads as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mpc.protocol.frame import Aggregates, Request
from mpc.ring import Component, FloatVector, RingVector

if TYPE_CHECKING:
    from fractions import Fraction

    from mpc.protocol.spec import JobSpec, Statistic
    from mpc.stats import EncodedVector


class LocalData(Protocol):
    """What a statistic may read from a party's data."""

    def table(self, name: str, columns: list[str]) -> _TableLike: ...

    def vector(self, name: str) -> FloatVector: ...

    def aggregate(self, request: Request) -> Aggregates:
        """Per-cell counts and encoded term sums of a frame (see :mod:`mpc.protocol.frame`),
        computed by the dataset's own engine (pushed down into SQL where it can be)."""
        ...

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 65536
    ) -> Iterator[dict[str, FloatVector]]:
        """The complete rows of ``columns``, a batch at a time (training streams these)."""
        ...


class _TableLike(Protocol):
    @property
    def rows(self) -> int: ...

    def column(self, name: str) -> FloatVector: ...


@dataclass(frozen=True)
class Layout:
    """How a result's values read as a table: ``len(index) * len(columns)`` values row-major,
    then one value per name in ``extras`` (test statistics such as chi2, dof, p_value)."""

    index: list[tuple[str, ...]]
    index_names: list[str]
    columns: list[str]
    extras: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.index) * len(self.columns) + len(self.extras)


#: (name, start, stop, l2 sensitivity, l1 sensitivity, share of the budget) per noise group.
NoiseGroupShape = tuple[str, int, int, int, int, "Fraction"]


@dataclass(frozen=True)
class StatisticDef:
    name: Statistic
    output_length: Callable[[JobSpec], int]
    components: Callable[[JobSpec], list[Component]]
    # (spec, the party's data, the round's public input or None) -> encoded statistic
    local: Callable[[JobSpec, LocalData, FloatVector | None], RingVector | EncodedVector]
    finish: Callable[[JobSpec, FloatVector], FloatVector]
    labels: Callable[[JobSpec], list[str]]
    #: The DP noise groups of the secure vector (None: the statistic's groups are built in
    #: to mpc.stats.privacy). One row must move only the entries its groups account for.
    dp_groups: Callable[[JobSpec], list[NoiseGroupShape]] | None = None
    #: The finished result as a table (None: one row, one column per label).
    layout: Callable[[JobSpec], Layout] | None = None


def default_layout(labels: list[str]) -> Layout:
    return Layout(index=[()], index_names=[], columns=labels)


__all__ = ["Layout", "LocalData", "NoiseGroupShape", "StatisticDef", "default_layout"]
