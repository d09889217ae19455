"""The noise in an analysis' released values: one sigma, 95% error bound and kind per label.

The coordinator's generic report gives one sigma per *vector entry*; an analysis releases
values of another shape (matrices, tables with test statistics, quantiles), so it states its
noise here, per label, from the noise plan and the noisy release (post-processing: no privacy
cost). Kinds as in :mod:`mpc.coordinator.outcome`: ``exact`` (the noise's own standard
deviation), ``delta-method`` (first-order propagation of every noise), ``upper bound``; ``""``
with NaN for derived test statistics (chi2, t, p-values...), whose noise is not stated.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.protocol.spec import JobSpec, Statistic
from mpc.stats.analyses import contingency, covariance, quantile, ttest
from mpc.stats.analyses._common import half, split_moments
from mpc.stats.privacy import NoiseGroup, NoisePlan

EXACT = "exact"
DELTA_METHOD = "delta-method"
UPPER_BOUND = "upper bound"
NOT_STATED = (math.nan, math.nan, "")

Statement = tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]]


class _Noise:
    """Standard deviations and tail bounds of a plan's groups, in data units."""

    def __init__(self, spec: JobSpec, plan: NoisePlan) -> None:
        self.plan = plan
        self.scale = math.ldexp(1.0, spec.frac_bits)
        self.groups = {g.name: g for g in plan.groups}

    def sd(self, name: str) -> float:
        group = self.groups[name]
        if group.laplace_scale is not None:
            inv_t = 1 / float(group.laplace_scale)
            return math.sqrt(2 * math.exp(-inv_t)) / -math.expm1(-inv_t) / self.scale
        return math.sqrt(float(self.plan.total_variance(group))) / self.scale

    def bound(self, name: str, confidence: Fraction) -> float:
        group: NoiseGroup = self.groups[name]
        if group.laplace_scale is not None:
            return float(group.laplace_scale) * math.log(2 / float(1 - confidence)) / self.scale
        return dp.error_bound(self.plan.total_variance(group), confidence) / self.scale


def analysis_noise(
    spec: JobSpec, plan: NoisePlan, decoded: np.ndarray, released: np.ndarray
) -> Statement | None:
    """Per label of ``spec``'s statistic: (sigmas, 95% bounds, kinds); None for a statistic
    that is not an analysis."""
    noise = _Noise(spec, plan)
    rows: list[tuple[float, float, str]]
    if spec.statistic is Statistic.CONTINGENCY:
        cell = (noise.sd("contingency"), noise.bound("contingency", Fraction(95, 100)), EXACT)
        rows = [cell] * spec.frame.cells + [NOT_STATED] * len(contingency.EXTRAS)
    elif spec.statistic is Statistic.QUANTILE:
        # The released error is the stated 95% bound (noise and bin width together).
        table = np.asarray(released, dtype=np.float64).reshape(-1, 3)
        rows = []
        for _, error, _ in table.tolist():
            rows += [(error / quantile.Z95, error, UPPER_BOUND), NOT_STATED, NOT_STATED]
    elif spec.statistic in (Statistic.COVARIANCE, Statistic.CORRELATION):
        rows = _covariance_rows(spec, noise, decoded, released)
    elif spec.statistic is Statistic.TTEST:
        rows = _ttest_rows(spec, noise, decoded)
    else:
        return None
    sigmas, bounds, kinds = zip(*rows, strict=True) if rows else ((), (), ())
    return tuple(sigmas), tuple(bounds), tuple(kinds)


def _covariance_rows(
    spec: JobSpec, noise: _Noise, decoded: np.ndarray, released: np.ndarray
) -> list[tuple[float, float, str]]:
    """Covariances: ``(P - S_i S_j / n) / (n - 1)`` to first order in every noise (sigma),
    and a union bound over the three groups at 98.33% each (the 95% bound). Correlations:
    not stated off the diagonal (exact 1 on it)."""
    pairs = covariance.upper_pairs(len(spec.columns))
    sums, _, counts = split_moments(spec, pairs, decoded)
    k = len(spec.columns)
    each = 1 - Fraction(5, 100) / 3
    s1, s2, s_n = noise.sd("centred sum"), noise.sd("centred product"), noise.sd("count")
    e1 = noise.bound("centred sum", each)
    e2 = noise.bound("centred product", each)
    e_n = noise.bound("count", each)
    halves = [half(b) for b in spec.columns]
    values = np.asarray(released, dtype=np.float64).reshape(-1, k, k)
    rows: list[tuple[float, float, str]] = []
    for g in range(counts.size):
        n = max(2.0, float(np.nan_to_num(counts[g])))
        centred = [
            min(h, abs(float(np.nan_to_num(s)) / n)) for s, h in zip(sums[g], halves, strict=True)
        ]
        for i in range(k):
            for j in range(k):
                if spec.statistic is Statistic.CORRELATION:
                    rows.append((0.0, 0.0, EXACT) if i == j else NOT_STATED)
                    continue
                ci, cj, hi, hj = centred[i], centred[j], halves[i], halves[j]
                v = float(np.nan_to_num(values[g, i, j]))
                sigma = math.sqrt(
                    s2**2 + (cj * s1) ** 2 + (ci * s1) ** 2 + ((ci * cj - v) * s_n) ** 2
                )
                worst = e2 + (hi + hj) * e1 + e1 * e1 / n + hi * hj * e_n
                cap = 2 * hi * hj  # released covariances lie in [-hi hj, hi hj]
                bound = min(cap, worst / max(1.0, n - 1 - e_n))
                rows.append((min(bound, sigma / (n - 1)), bound, DELTA_METHOD))
    return rows


def _ttest_rows(
    spec: JobSpec, noise: _Noise, decoded: np.ndarray
) -> list[tuple[float, float, str]]:
    """Means as the mean statistic's ``m + S / n`` (sums and count at 97.5% each), their
    difference (both groups' noises); t, df and the p-value are not stated."""
    pairs = tuple((i, i) for i in range(len(spec.columns)))
    sums, _, counts = split_moments(spec, pairs, decoded)
    s_sum, s_n = noise.sd("centred sum"), noise.sd("count")
    e_sum = noise.bound("centred sum", Fraction(975, 1000))
    e_n = noise.bound("count", Fraction(975, 1000))
    rows: list[tuple[float, float, str]] = []
    for i, bound in enumerate(spec.columns):
        h = half(bound)
        means = []
        for g in range(2):
            n = max(1.0, float(np.nan_to_num(counts[g])))
            c = min(h, abs(float(np.nan_to_num(sums[g, i])) / n))
            sigma = math.sqrt(s_sum**2 + (c * s_n) ** 2) / n
            limit = min(2 * h, (e_sum + h * e_n) / max(1.0, n - e_n))  # means lie in [lo, hi]
            means.append((min(sigma, limit), limit, DELTA_METHOD))
        difference = (
            math.hypot(means[0][0], means[1][0]),
            min(4 * h, means[0][1] + means[1][1]),
            DELTA_METHOD,
        )
        rows += [*means, difference] + [NOT_STATED] * (len(ttest.FIELDS) - 3)
    return rows


__all__ = ["analysis_noise"]
