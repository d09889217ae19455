"""Worst-case fixed-point error of each released analysis value, one per label, from public
limits only (bounds and ``frac_bits``): what the rounding of every row's encoded terms can do
to a value. NaN where no public bound exists (a correlation divides by data-dependent
spreads; t, df and p-values are not stated). DP noise is reported separately
(:mod:`mpc.stats.analyses.noise`)."""

from __future__ import annotations

import math

from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import resolution
from mpc.stats.analyses import contingency, ttest
from mpc.stats.analyses._common import half

#: float64's relative rounding, doubled (generous): decoding and post-processing in floats.
_FLOAT_EPS = 2.0**-52


def analysis_tolerances(spec: JobSpec) -> tuple[float, ...] | None:
    """Per label of ``spec``'s statistic; None for a statistic that is not an analysis.

    Each row's encoded term is off by at most half a step ``u``; a cell's sums by ``n u``.
    A covariance ``(P - S_i S_j / n) / (n - 1)`` is then off by at most
    ``(n u + (h_i + h_j) n u + n u^2) / (n - 1) <= 2 u (1 + h_i + h_j + u)`` (``n >= 2``), a
    mean ``m + S / n`` by ``u``; counts (contingency tables, quantile histograms) are exact.
    """
    u = resolution(spec.frac_bits) / 2
    cells = spec.frame.cells
    if spec.statistic is Statistic.CONTINGENCY:
        return (0.0,) * (cells + len(contingency.EXTRAS))
    if spec.statistic is Statistic.QUANTILE:
        per = 3 if spec.privacy is not None else 2
        return (0.0,) * (cells * len(spec.quantiles) * per)
    halves = [half(b) for b in spec.columns]
    if spec.statistic is Statistic.COVARIANCE:
        matrix = [
            2 * u * (1 + hi + hj + u) + 16 * _FLOAT_EPS * hi * hj for hi in halves for hj in halves
        ]
        return tuple(matrix * cells)
    if spec.statistic is Statistic.CORRELATION:
        k = len(halves)
        return tuple([0.0 if i == j else math.nan for i in range(k) for j in range(k)] * cells)
    if spec.statistic is Statistic.TTEST:
        out: list[float] = []
        for b in spec.columns:
            mean = u + 4 * _FLOAT_EPS * max(abs(b.lo), abs(b.hi))
            out += [mean, mean, 2 * mean] + [math.nan] * (len(ttest.FIELDS) - 3)
        return tuple(out)
    return None


__all__ = ["analysis_tolerances"]
