"""Covariance and Pearson correlation matrices from one Gram round.

Each party sends, per cell, the centred sums ``sum(x_i - m_i)``, the upper triangle of centred
products ``sum((x_i - m_i)(x_j - m_j))`` (squares included) and the count
(:mod:`mpc.stats.analyses._common`), every encoded term clamped to its bound. Centring on the
declared midpoints changes no covariance and keeps every entry's bound (and so its DP
sensitivity) as small as the bounds allow: ``h_i h_j`` for a product, ``h = (hi - lo) / 2``.

The sample covariance of a cell is ``(P_ij - S_i S_j / n) / (n - 1)``. With DP the released
entries are noisy (one noise group per column's sums, per pair's products and for the count,
each sized to its own entry's bound; a third of the budget for the sums, shared equally by the
columns, a third for the products, shared equally by the pairs, and a third for the count), so
a narrow column's variance gets noise on its own scale, not a wide column's; post-processing
keeps the matrix sane: the count is rounded, at least 2,
variances are clamped to ``[0, h_i^2]`` and every covariance to the Cauchy-Schwarz bound
``sqrt(var_i var_j)``, so a correlation always lies in ``[-1, 1]``. Without DP, a cell with
fewer than 2 rows gives NaN.
"""

from __future__ import annotations

import math

import numpy as np

from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.analyses._common import (
    Pairs,
    cell_names,
    half,
    moment_components,
    moment_groups,
    moment_length,
    moment_local,
    split_moments,
)
from mpc.stats.base import Layout, LocalData, NoiseGroupShape, StatisticDef


def upper_pairs(k: int) -> Pairs:
    """``(i, j)`` with ``i <= j``, row by row: the upper triangle, diagonal included."""
    return tuple((i, j) for i in range(k) for j in range(i, k))


def _pairs(spec: JobSpec) -> Pairs:
    return upper_pairs(len(spec.columns))


def _local(spec: JobSpec, data: LocalData, round_input: FloatVector | None = None) -> RingVector:
    return moment_local(spec, data, _pairs(spec))


def _components(spec: JobSpec) -> list[Component]:
    return moment_components(spec, _pairs(spec))


def _groups(spec: JobSpec) -> list[NoiseGroupShape]:
    return moment_groups(spec, _pairs(spec))


def covariance_matrices(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    """``[cells, k, k]`` sample covariance matrices (see the module docstring)."""
    pairs = _pairs(spec)
    k = len(spec.columns)
    sums, products, counts = split_moments(spec, pairs, revealed)
    cells = counts.size
    noisy = spec.privacy is not None
    out = np.full((cells, k, k), math.nan)
    halves = np.array([half(b) for b in spec.columns])
    for g in range(cells):
        n = float(counts[g])
        if noisy:
            n = float(max(2, round(n))) if math.isfinite(n) else 2.0
        elif not n >= 2:
            continue  # undefined: NaN
        s = sums[g]
        matrix = np.empty((k, k))
        for p, (i, j) in enumerate(pairs):
            value = (products[g, p] - s[i] * s[j] / n) / (n - 1)
            matrix[i, j] = matrix[j, i] = value
        if noisy:
            diag = np.clip(np.nan_to_num(np.diag(matrix)), 0.0, halves * halves)
            limit = np.sqrt(np.outer(diag, diag))
            matrix = np.clip(np.nan_to_num(matrix), -limit, limit)
            np.fill_diagonal(matrix, diag)
        out[g] = matrix
    return out


def correlation_matrices(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    """``[cells, k, k]`` Pearson correlations, clamped to ``[-1, 1]`` with a unit diagonal
    (NaN where a variance is 0 or the cell has too few rows, as numpy.corrcoef)."""
    cov = covariance_matrices(spec, revealed)
    with np.errstate(all="ignore"):
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        corr = np.clip(corr, -1.0, 1.0)  # NaN stays NaN
    k = cov.shape[1]
    index = np.arange(k)
    defined = np.isfinite(sd) & (sd > 0)
    corr[:, index, index] = np.where(defined, 1.0, math.nan)
    return np.asarray(corr, dtype=np.float64)


def _finish_covariance(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    return covariance_matrices(spec, revealed).ravel()


def _finish_correlation(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    return correlation_matrices(spec, revealed).ravel()


def _labels(spec: JobSpec) -> list[str]:
    names = [b.column for b in spec.columns]
    return [f"{cell}{a} x {b}" for cell in cell_names(spec) for a in names for b in names]


def _layout(spec: JobSpec) -> Layout:
    names = [b.column for b in spec.columns]
    cells = spec.frame.cell_labels()
    return Layout(
        index=[(*cell, name) for cell in cells for name in names],
        index_names=[*(key.column for key in spec.group_by), "column"],
        columns=names,
    )


def _output_length(spec: JobSpec) -> int:
    return moment_length(spec, _pairs(spec))


REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.COVARIANCE: StatisticDef(
        name=Statistic.COVARIANCE,
        output_length=_output_length,
        components=_components,
        local=_local,
        finish=_finish_covariance,
        labels=_labels,
        dp_groups=_groups,
        layout=_layout,
    ),
    Statistic.CORRELATION: StatisticDef(
        name=Statistic.CORRELATION,
        output_length=_output_length,
        components=_components,
        local=_local,
        finish=_finish_correlation,
        labels=_labels,
        dp_groups=_groups,
        layout=_layout,
    ),
}

__all__ = ["REGISTRY", "correlation_matrices", "covariance_matrices", "upper_pairs"]
