"""Goodness-of-fit checks of integer samples against an exact pmf (test helper, not a test).

Two tests, each at false-alarm rate ``ALPHA`` (1e-6), so a correct sampler fails either with
probability at most 2e-6 per call:

* Pearson chi-square on bins of roughly equal expected count (at least ``MIN_EXPECTED``), the
  tails pooled into the first and last bins; critical value ``chi2.isf(ALPHA, bins - 1)``.
* Dvoretzky-Kiefer-Wolfowitz: ``P(sup_x |F_n(x) - F(x)| > e) <= 2 exp(-2 n e^2)`` (Massart's
  constant; it holds for discrete F too), so ``e = sqrt(ln(2/ALPHA) / (2n))``. We evaluate the
  sup over a grid of integers (every integer when the support is small): a sup over fewer points
  is no larger, so the false-alarm rate stays below ALPHA.

Bin probabilities are sums of the pmf over every integer of the bin, computed in chunks, so
even sigma ~ 2**20 needs no continuous approximation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

ALPHA = 1e-6
MIN_EXPECTED = 50.0
MAX_BINS = 200
_GRID_POINTS = 20_000
_CHUNK = 1 << 20

Pmf = Callable[[NDArray[np.int64]], NDArray[np.float64]]


@dataclass(frozen=True)
class GofResult:
    chi2: float
    chi2_critical: float
    bins: int
    dkw: float
    dkw_critical: float

    @property
    def passed(self) -> bool:
        return self.chi2 <= self.chi2_critical and self.dkw <= self.dkw_critical

    def __str__(self) -> str:
        return (
            f"chi2={self.chi2:.1f} (critical {self.chi2_critical:.1f}, {self.bins} bins), "
            f"DKW={self.dkw:.5f} (critical {self.dkw_critical:.5f})"
        )


def cdf_at(points: NDArray[np.int64], pmf: Pmf, lo: int, hi: int) -> NDArray[np.float64]:
    """``P(X <= p)`` for sorted integer points in [lo, hi], for a distribution symmetric about 0
    whose mass outside [lo, hi] is negligible (it is split evenly between the two tails)."""
    cum = np.empty(points.size, dtype=np.float64)
    running = 0.0
    start = lo
    idx = 0
    while start <= hi:
        stop = min(hi, start + _CHUNK - 1)
        xs = np.arange(start, stop + 1, dtype=np.int64)
        partial = np.cumsum(pmf(xs)) + running
        j = int(np.searchsorted(points, stop, side="right"))
        cum[idx:j] = partial[points[idx:j] - start]
        idx = j
        running = float(partial[-1])
        start = stop + 1
    outside = max(0.0, 1.0 - running)
    return cum + outside / 2.0


def check(samples: NDArray[np.int64], pmf: Pmf, lo: int, hi: int) -> GofResult:
    """Chi-square and DKW of ``samples`` against ``pmf`` (support effectively within [lo, hi])."""
    n = samples.size
    sorted_samples = np.sort(samples)
    if hi - lo + 1 <= _GRID_POINTS:
        grid = np.arange(lo, hi + 1, dtype=np.int64)
    else:
        grid = np.unique(np.linspace(lo, hi, _GRID_POINTS).round().astype(np.int64))
    cdf = cdf_at(grid, pmf, lo, hi)
    ecdf = np.searchsorted(sorted_samples, grid, side="right") / n
    dkw = float(np.max(np.abs(ecdf - cdf)))
    dkw_critical = math.sqrt(math.log(2.0 / ALPHA) / (2.0 * n))

    # Bins: consecutive grid cells merged until each expects >= target samples. Bin i is
    # (edge[i-1], edge[i]]; the first bin also takes everything below, the last everything above.
    target = max(MIN_EXPECTED, n / MAX_BINS)
    edges: list[int] = []
    last = 0.0
    for g, c in zip(grid.tolist(), cdf.tolist(), strict=True):
        if (c - last) * n >= target and (1.0 - c) * n >= target:
            edges.append(g)
            last = c
    edge_arr = np.array(edges, dtype=np.int64)
    probs = np.diff(np.concatenate(([0.0], cdf_at(edge_arr, pmf, lo, hi), [1.0])))
    observed = np.bincount(np.searchsorted(edge_arr, samples, side="left"), minlength=probs.size)
    expected = probs * n
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    chi2_critical = float(stats.chi2.isf(ALPHA, probs.size - 1))
    return GofResult(chi2, chi2_critical, int(probs.size), dkw, dkw_critical)


def binomial_ok(successes: int, trials: int, p: float) -> bool:
    """Two-sided binomial test at false-alarm rate ALPHA."""
    lo = stats.binom.ppf(ALPHA / 2, trials, p)
    hi = stats.binom.isf(ALPHA / 2, trials, p)
    return bool(lo <= successes <= hi)
