"""Probability mass functions and variances of the discrete Gaussian and discrete Laplace.

These are *descriptions* of the distributions the samplers draw from, used for goodness-of-fit
tests and error bars. They are computed in double precision (relative error ~1e-15, far below
anything a test or an error bar can see); nothing here is used to decide a sample.

* Discrete Gaussian ``N_Z(0, s)``: ``P[x] = exp(-x^2/(2s)) / Z(s)``. For ``s >= 1`` the
  normaliser and the variance come from the Poisson summation formula (Canonne, Kamath, Steinke
  2020, Fact 18 and Prop. 19 use the same identity), whose dual series converges like
  ``exp(-2 pi^2 s k^2)``; below that the direct sums converge fast.
* Discrete Laplace of scale ``t``: ``P[x] = tanh(1/(2t)) exp(-|x|/t)``, variance
  ``2r/(1-r)^2`` with ``r = exp(-1/t)``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mpc.dp._validate import RationalLike, positive_exact

_DUAL_TERMS = 4  # exp(-2 pi^2 s k^2) for k = 4, s >= 1 is below 1e-130: negligible


def _direct_support(s: float) -> range:
    """Integers outside this range carry relative mass below 1e-300 (|x| > 38 sigma)."""
    half = math.ceil(38.0 * math.sqrt(s)) + 2
    return range(-half, half + 1)


def _log_normaliser(s: float) -> float:
    """log Z(s) with Z(s) = sum over integers x of exp(-x^2 / (2s))."""
    if s >= 1.0:
        dual = 1.0 + 2.0 * sum(
            math.exp(-2.0 * math.pi**2 * s * k * k) for k in range(1, _DUAL_TERMS + 1)
        )
        return 0.5 * math.log(2.0 * math.pi * s) + math.log(dual)
    xs = np.arange(_direct_support(s).start, _direct_support(s).stop, dtype=np.float64)
    return math.log(float(np.exp(-(xs * xs) / (2.0 * s)).sum()))


def discrete_gaussian_pmf(x: ArrayLike, sigma_sq: RationalLike) -> NDArray[np.float64]:
    """``P[X = x]`` for ``X ~ N_Z(0, sigma_sq)``, elementwise over integer ``x``."""
    s = float(positive_exact(sigma_sq, "sigma_sq"))
    xf = np.asarray(x, dtype=np.float64)
    result: NDArray[np.float64] = np.exp(-(xf * xf) / (2.0 * s) - _log_normaliser(s))
    return result


def discrete_gaussian_variance(sigma_sq: RationalLike) -> float:
    """``Var[X]`` for ``X ~ N_Z(0, sigma_sq)``; always slightly below ``sigma_sq``.

    By Poisson summation, ``Var = s * sum_k (1 - 4 pi^2 s k^2) e^{-2 pi^2 s k^2} /
    sum_k e^{-2 pi^2 s k^2}`` (sums over all integers k); the deficit from ``s`` is below
    ``8 pi^2 s^2 e^{-2 pi^2 s}``, e.g. 2e-7 relative at s = 1.
    """
    s = float(positive_exact(sigma_sq, "sigma_sq"))
    if s >= 1.0:
        num = 1.0
        den = 1.0
        for k in range(1, _DUAL_TERMS + 1):
            w = math.exp(-2.0 * math.pi**2 * s * k * k)
            num += 2.0 * (1.0 - 4.0 * math.pi**2 * s * k * k) * w
            den += 2.0 * w
        return s * num / den
    support = _direct_support(s)
    xs = np.arange(support.start, support.stop, dtype=np.float64)
    weights = np.exp(-(xs * xs) / (2.0 * s))
    return float((xs * xs * weights).sum() / weights.sum())


def discrete_laplace_pmf(x: ArrayLike, scale: RationalLike) -> NDArray[np.float64]:
    """``P[X = x]`` for the discrete Laplace ``P[x] ∝ exp(-|x|/scale)``, elementwise."""
    t = float(positive_exact(scale, "scale"))
    xf = np.abs(np.asarray(x, dtype=np.float64))
    result: NDArray[np.float64] = math.tanh(0.5 / t) * np.exp(-xf / t)
    return result


def discrete_laplace_variance(scale: RationalLike) -> float:
    """``Var[X]`` for the discrete Laplace of the given scale: ``2r/(1-r)^2``, r = e^{-1/t}."""
    t = float(positive_exact(scale, "scale"))
    r = math.exp(-1.0 / t)
    return 2.0 * r / math.expm1(-1.0 / t) ** 2
