"""The pmfs and variances used by the goodness-of-fit tests are themselves right."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from mpc.dp.distributions import (
    discrete_gaussian_pmf,
    discrete_gaussian_variance,
    discrete_laplace_pmf,
    discrete_laplace_variance,
)


def _direct_gauss(sigma_sq: float) -> tuple[np.ndarray, np.ndarray]:
    half = math.ceil(40 * math.sqrt(sigma_sq)) + 5
    xs = np.arange(-half, half + 1)
    w = np.exp(-(xs.astype(np.float64) ** 2) / (2 * sigma_sq))
    return xs, w / math.fsum(w)


@pytest.mark.parametrize(
    "sigma_sq",
    [Fraction(1, 10), Fraction(1, 4), Fraction(1), Fraction(11449, 400), Fraction(10**6)],
)
def test_discrete_gaussian_pmf_matches_direct_normalisation(sigma_sq: Fraction) -> None:
    xs, direct = _direct_gauss(float(sigma_sq))
    ours = discrete_gaussian_pmf(xs, sigma_sq)
    np.testing.assert_allclose(ours, direct, rtol=1e-10, atol=1e-300)
    assert math.isclose(math.fsum(ours), 1.0, rel_tol=1e-12)
    var = math.fsum(xs.astype(np.float64) ** 2 * direct)
    assert math.isclose(discrete_gaussian_variance(sigma_sq), var, rel_tol=1e-10)


def test_discrete_gaussian_variance_is_below_sigma_sq() -> None:
    # CKS 2020: Var < sigma^2, with a deficit that vanishes exponentially fast.
    assert discrete_gaussian_variance(Fraction(1, 4)) < 0.25 * 0.9
    assert 1 - 1e-6 < discrete_gaussian_variance(Fraction(1)) < 1
    assert discrete_gaussian_variance(Fraction(100)) == pytest.approx(100, rel=1e-15)


@pytest.mark.parametrize("scale", [Fraction(1, 3), Fraction(1), Fraction(7, 2), Fraction(1000)])
def test_discrete_laplace_pmf_and_variance(scale: Fraction) -> None:
    t = float(scale)
    half = math.ceil(60 * t) + 5
    xs = np.arange(-half, half + 1)
    w = np.exp(-np.abs(xs) / t)
    direct = w / math.fsum(w)
    np.testing.assert_allclose(discrete_laplace_pmf(xs, scale), direct, rtol=1e-10, atol=1e-300)
    var = math.fsum(xs.astype(np.float64) ** 2 * direct)
    assert math.isclose(discrete_laplace_variance(scale), var, rel_tol=1e-9)
