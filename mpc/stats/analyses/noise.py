"""The noise in an analysis' released values: one sigma, 95% error bound and kind per label.

The coordinator's generic report gives one sigma per *vector entry*; an analysis releases
values of another shape (matrices, tables with test statistics, quantiles), so it states its
noise here, per label, from the noise plan and the noisy release (post-processing: no privacy
cost). Kinds as in :mod:`mpc.coordinator.outcome`: ``exact`` (the noise's own standard
deviation), ``delta-method`` (first-order propagation of every noise), ``upper bound``; ``""``
with NaN for derived test statistics (chi2, t, p-values...), whose noise is not stated.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.protocol.spec import JobSpec, Statistic
from mpc.stats.analyses import contingency, covariance, quantile, ttest
from mpc.stats.analyses._common import (
    count_index,
    half,
    product_index,
    split_moments,
    sum_index,
)
from mpc.stats.privacy import NoiseGroup, NoisePlan

EXACT = "exact"
DELTA_METHOD = "delta-method"
UPPER_BOUND = "upper bound"
NOT_STATED = (math.nan, math.nan, "")

Statement = tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]]


class _Noise:
    """Standard deviations and tail bounds of a plan's groups, in data units: by group name, or
    for the group that noises one entry of the vector (so a released value's error uses the
    noise of exactly the entries it is computed from)."""

    def __init__(self, spec: JobSpec, plan: NoisePlan) -> None:
        self.plan = plan
        self.scale = math.ldexp(1.0, spec.frac_bits)
        self.groups = {g.name: g for g in plan.groups}
        self.ordered = sorted(plan.groups, key=lambda g: g.start)
        self.starts = [g.start for g in self.ordered]
        self.cache: dict[tuple[int, Fraction | None], float] = {}

    def at(self, index: int) -> NoiseGroup:
        """The group whose range ``[start, stop)`` holds vector entry ``index``."""
        group = self.ordered[bisect.bisect_right(self.starts, index) - 1]
        if not group.start <= index < group.stop:
            raise ValueError("no noise group holds this entry")  # a layout bug: public
        return group

    def sd(self, name: str) -> float:
        return self._sd(self.groups[name])

    def bound(self, name: str, confidence: Fraction) -> float:
        return self._bound(self.groups[name], confidence)

    def sd_at(self, index: int) -> float:
        group = self.at(index)
        key = (group.start, None)
        if key not in self.cache:
            self.cache[key] = self._sd(group)
        return self.cache[key]

    def bound_at(self, index: int, confidence: Fraction) -> float:
        group = self.at(index)
        key = (group.start, confidence)
        if key not in self.cache:
            self.cache[key] = self._bound(group, confidence)
        return self.cache[key]

    def _sd(self, group: NoiseGroup) -> float:
        if group.laplace_scale is not None:
            inv_t = 1 / float(group.laplace_scale)
            return math.sqrt(2 * math.exp(-inv_t)) / -math.expm1(-inv_t) / self.scale
        return math.sqrt(float(self.plan.total_variance(group))) / self.scale

    def _bound(self, group: NoiseGroup, confidence: Fraction) -> float:
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
    """Covariances: ``(P_ij - S_i S_j / n) / (n - 1)`` to first order in the noise of its own
    entries (``P_ij``, ``S_i``, ``S_j``, ``n``: each from its own group) for sigma, and a union
    bound over those entries (3 on the diagonal, 4 off it), each at ``1 - 5% / entries``, for
    the 95% bound. Correlations: not stated off the diagonal (exact 1 on it)."""
    pairs = covariance.upper_pairs(len(spec.columns))
    number = {pair: n for n, pair in enumerate(pairs)}
    sums, _, counts = split_moments(spec, pairs, decoded)
    k = len(spec.columns)
    halves = [half(b) for b in spec.columns]
    values = np.asarray(released, dtype=np.float64).reshape(-1, k, k)
    rows: list[tuple[float, float, str]] = []
    for g in range(counts.size):
        n = max(2.0, float(np.nan_to_num(counts[g])))
        centred = [
            min(h, abs(float(np.nan_to_num(s)) / n)) for s, h in zip(sums[g], halves, strict=True)
        ]
        at_n = count_index(spec, pairs, g)
        s_n = noise.sd_at(at_n)
        for i in range(k):
            for j in range(k):
                if spec.statistic is Statistic.CORRELATION:
                    rows.append((0.0, 0.0, EXACT) if i == j else NOT_STATED)
                    continue
                at_p = product_index(spec, number[min(i, j), max(i, j)], g)
                at_i, at_j = sum_index(spec, i, g), sum_index(spec, j, g)
                each = 1 - Fraction(5, 100) / (3 if i == j else 4)
                s2, s_i, s_j = noise.sd_at(at_p), noise.sd_at(at_i), noise.sd_at(at_j)
                e2, e_i, e_j = (noise.bound_at(at, each) for at in (at_p, at_i, at_j))
                e_n = noise.bound_at(at_n, each)
                ci, cj, hi, hj = centred[i], centred[j], halves[i], halves[j]
                v = float(np.nan_to_num(values[g, i, j]))
                # d/dS_i = -S_j / n (twice that on the diagonal, where S_i is S_j).
                sums_sq = (2 * ci * s_i) ** 2 if i == j else (cj * s_i) ** 2 + (ci * s_j) ** 2
                sigma = math.sqrt(s2**2 + sums_sq + ((ci * cj - v) * s_n) ** 2)
                worst = e2 + hi * e_j + hj * e_i + e_i * e_j / n + hi * hj * e_n
                cap = 2 * hi * hj  # released covariances lie in [-hi hj, hi hj]
                bound = min(cap, worst / max(1.0, n - 1 - e_n))
                rows.append((min(bound, sigma / (n - 1)), bound, DELTA_METHOD))
    return rows


def _ttest_rows(
    spec: JobSpec, noise: _Noise, decoded: np.ndarray
) -> list[tuple[float, float, str]]:
    """Means as the mean statistic's ``m + S / n`` (the column's sum and the count of the
    group, at 97.5% each), their difference (both groups' noises); t, df and the p-value are
    not stated."""
    pairs = tuple((i, i) for i in range(len(spec.columns)))
    sums, _, counts = split_moments(spec, pairs, decoded)
    each = Fraction(975, 1000)
    rows: list[tuple[float, float, str]] = []
    for i, bound in enumerate(spec.columns):
        h = half(bound)
        means = []
        for g in range(2):
            at_sum, at_n = sum_index(spec, i, g), count_index(spec, pairs, g)
            s_sum, s_n = noise.sd_at(at_sum), noise.sd_at(at_n)
            e_sum, e_n = noise.bound_at(at_sum, each), noise.bound_at(at_n, each)
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
