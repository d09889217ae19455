"""Contingency tables over two group keys, with Pearson's chi-square test of independence.

Each party sends its row count per cell of the two keys (categorical, or numeric cut at bin
edges), encoded like counts (``count << f``); the secure sum is the pooled table. Adding or
removing one row changes exactly one cell by one: L1 = L2 = ``2^f``, one noise group.

The test (``scipy.stats.chi2_contingency(correction=False)``) is computed on the table with
its all-zero rows and columns dropped; with fewer than 2 x 2 left, chi2, dof and p_value are
NaN. With DP the table is released rounded to non-negative integers and the test is computed
from it (post-processing).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.protocol.frame import Request
from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.analyses._common import chi2_sf, count_entries
from mpc.stats.base import Layout, LocalData, NoiseGroupShape, StatisticDef

EXTRAS = ["chi2", "dof", "p_value"]


def _shape(spec: JobSpec) -> tuple[int, int]:
    rows, cols = spec.group_by
    return rows.size, cols.size


def _local(spec: JobSpec, data: LocalData, round_input: FloatVector | None = None) -> RingVector:
    agg = data.aggregate(Request(spec.frame, (), spec.frac_bits))
    return count_entries(agg.counts, spec.frac_bits)


def chi_square(table: FloatVector) -> tuple[float, float, float]:
    """``(chi2, dof, p_value)`` of Pearson's test of independence (no continuity
    correction) on ``table`` without its empty rows and columns; NaN below 2 x 2."""
    observed = np.asarray(table, dtype=np.float64)
    if observed.ndim != 2 or not np.all(np.isfinite(observed)):
        return math.nan, math.nan, math.nan
    observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
    rows, cols = observed.shape
    if rows < 2 or cols < 2:
        return math.nan, math.nan, math.nan
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    dof = float((rows - 1) * (cols - 1))
    return chi2, dof, chi2_sf(chi2, dof)


def _finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    rows, cols = _shape(spec)
    table = np.asarray(revealed[: rows * cols], dtype=np.float64)
    if spec.privacy is not None:
        table = np.maximum(np.rint(np.nan_to_num(table)), 0.0)
    return np.concatenate([table, chi_square(table.reshape(rows, cols))])


def _groups(spec: JobSpec) -> list[NoiseGroupShape]:
    # One row is in exactly one cell (or none): one count moves by one.
    one = dp.histogram_sensitivity(spec.frac_bits)
    rows, cols = _shape(spec)
    return [("contingency", 0, rows * cols, one, one, Fraction(1))]


def _labels(spec: JobSpec) -> list[str]:
    return [", ".join(cell) for cell in spec.frame.cell_labels()] + EXTRAS


def _layout(spec: JobSpec) -> Layout:
    row_key, col_key = spec.group_by
    return Layout(
        index=[(label,) for label in row_key.labels()],
        index_names=[row_key.column],
        columns=col_key.labels(),
        extras=list(EXTRAS),
    )


REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.CONTINGENCY: StatisticDef(
        name=Statistic.CONTINGENCY,
        output_length=lambda spec: spec.frame.cells,
        components=lambda spec: [Component("cell count", 1.0)],
        local=_local,
        finish=_finish,
        labels=_labels,
        dp_groups=_groups,
        layout=_layout,
    ),
}

__all__ = ["EXTRAS", "REGISTRY", "chi_square"]
