"""Welch's t-test per column between the two cells of one group key.

Each party sends, per cell (the key has exactly two categories or two bins), the centred sums
and centred squares of every column and the count (:mod:`mpc.stats.analyses._common`, pairs
``(i, i)`` only), the same moments as the variance statistic; the DP budget is split in
thirds as the variance's (sums, squares, count), with one noise group per column's sums and
per column's squares (each sized to its own bound, an equal share of its third), one row
lying in one cell.

Per column: both means, their difference (first group minus second), Welch's
``t = (mean_a - mean_b) / sqrt(v_a/n_a + v_b/n_b)``, the Welch-Satterthwaite degrees of
freedom and the two-sided p-value (as ``scipy.stats.ttest_ind(a, b, equal_var=False)``). NaN
where a group has fewer than 2 rows or both variances are 0. With DP, counts are rounded,
means clamped to the bounds and variances to ``[0, h^2]`` (post-processing).
"""

from __future__ import annotations

import math

import numpy as np

from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.analyses._common import (
    Pairs,
    half,
    moment_components,
    moment_groups,
    moment_length,
    moment_local,
    split_moments,
    t_sf,
)
from mpc.stats.base import Layout, LocalData, NoiseGroupShape, StatisticDef

FIELDS = ("mean_a", "mean_b", "difference", "t", "df", "p_value")


def _pairs(spec: JobSpec) -> Pairs:
    return tuple((i, i) for i in range(len(spec.columns)))


def _local(spec: JobSpec, data: LocalData, round_input: FloatVector | None = None) -> RingVector:
    return moment_local(spec, data, _pairs(spec))


def welch(
    mean_a: float, var_a: float, n_a: float, mean_b: float, var_b: float, n_b: float
) -> tuple[float, float, float]:
    """``(t, df, p_value)`` of Welch's test from the groups' moments (NaN when undefined)."""
    if not (n_a >= 2 and n_b >= 2):
        return math.nan, math.nan, math.nan
    se_a, se_b = var_a / n_a, var_b / n_b
    se = se_a + se_b
    if not (math.isfinite(se) and se > 0):
        return math.nan, math.nan, math.nan
    t = (mean_a - mean_b) / math.sqrt(se)
    df = se * se / (se_a * se_a / (n_a - 1) + se_b * se_b / (n_b - 1))
    p = 2 * t_sf(abs(t), df)
    return t, df, p


def _finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    sums, squares, counts = split_moments(spec, _pairs(spec), revealed)
    noisy = spec.privacy is not None
    out = np.full((len(spec.columns), len(FIELDS)), math.nan)
    n = [float(c) for c in counts]
    if noisy:
        n = [float(max(0, round(c))) if math.isfinite(c) else 0.0 for c in n]
    for i, bound in enumerate(spec.columns):
        centre, h = (bound.lo + bound.hi) / 2, half(bound)
        means, variances = [], []
        for g in range(2):
            s1, s2, size = float(sums[g, i]), float(squares[g, i]), n[g]
            mean = centre + s1 / size if size >= 1 else math.nan
            var = (s2 - s1 * s1 / size) / (size - 1) if size >= 2 else math.nan
            if noisy:
                mean = min(bound.hi, max(bound.lo, mean)) if size >= 1 else math.nan
                var = min(h * h, max(0.0, var)) if size >= 2 else math.nan
            else:
                var = max(0.0, var) if size >= 2 else math.nan
            means.append(mean)
            variances.append(var)
        t, df, p = welch(means[0], variances[0], n[0], means[1], variances[1], n[1])
        out[i] = [means[0], means[1], means[0] - means[1], t, df, p]
    return out.ravel()


def _columns(spec: JobSpec) -> list[str]:
    a, b = spec.group_by[0].labels()
    return [f"mean {a}", f"mean {b}", "difference", "t", "df", "p_value"]


def _labels(spec: JobSpec) -> list[str]:
    return [f"{b.column}: {name}" for b in spec.columns for name in _columns(spec)]


def _layout(spec: JobSpec) -> Layout:
    return Layout(
        index=[(b.column,) for b in spec.columns], index_names=["column"], columns=_columns(spec)
    )


def _components(spec: JobSpec) -> list[Component]:
    return moment_components(spec, _pairs(spec))


def _groups(spec: JobSpec) -> list[NoiseGroupShape]:
    return moment_groups(spec, _pairs(spec))


REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.TTEST: StatisticDef(
        name=Statistic.TTEST,
        output_length=lambda spec: moment_length(spec, _pairs(spec)),
        components=_components,
        local=_local,
        finish=_finish,
        labels=_labels,
        dp_groups=_groups,
        layout=_layout,
    ),
}

__all__ = ["FIELDS", "REGISTRY", "welch"]
