"""Goodness of fit of the exact samplers against their pmfs, and wrong samplers that must fail.

Every statistical check has a false-alarm rate of 1e-6 (see dp_gof), so these tests are not
flaky. The wrong samplers are built from a *seeded* numpy Generator or from deliberate
mistakes, so that their failure is deterministic or overwhelming.
"""

from __future__ import annotations

import math
import secrets
from fractions import Fraction

import dp_gof
import numpy as np
import pytest
from numpy.typing import NDArray

from mpc.dp import samplers
from mpc.dp.distributions import (
    discrete_gaussian_pmf,
    discrete_gaussian_variance,
    discrete_laplace_pmf,
)
from mpc.dp.samplers import (
    sample_bernoulli_exp,
    sample_discrete_gaussian,
    sample_discrete_gaussian_scalar,
    sample_discrete_laplace,
    sample_discrete_laplace_scalar,
)
from mpc.errors import ConfigError

FIXED_POINT_SIGMA = Fraction(535, 100) * 2**16  # sigma = 5.35 in 16-bit fixed point


def _gauss_support(sigma_sq: Fraction) -> tuple[int, int]:
    half = math.ceil(9.0 * math.sqrt(sigma_sq)) + 3  # mass beyond 9 sigma: ~2e-19
    return -half, half


def _laplace_support(scale: Fraction) -> tuple[int, int]:
    half = math.ceil(36.0 * float(scale)) + 3  # mass beyond 36 t: ~2e-16
    return -half, half


def _check_gauss(samples: NDArray[np.int64], sigma_sq: Fraction) -> dp_gof.GofResult:
    lo, hi = _gauss_support(sigma_sq)
    return dp_gof.check(samples, lambda x: discrete_gaussian_pmf(x, sigma_sq), lo, hi)


def _check_laplace(samples: NDArray[np.int64], scale: Fraction) -> dp_gof.GofResult:
    lo, hi = _laplace_support(scale)
    return dp_gof.check(samples, lambda x: discrete_laplace_pmf(x, scale), lo, hi)


# ------------------------------------------------------------------ correct samplers fit


@pytest.mark.parametrize(
    ("sigma_sq", "n"),
    [
        (Fraction(1, 4), 300_000),
        (Fraction(1), 300_000),
        (Fraction(11449, 400), 300_000),  # sigma = 5.35
        (Fraction(10**6 + 1, 3), 300_000),
        (FIXED_POINT_SIGMA**2, 1_000_000),
    ],
)
def test_vectorised_discrete_gaussian_fits_pmf(sigma_sq: Fraction, n: int) -> None:
    samples = sample_discrete_gaussian(sigma_sq, n)
    assert samples.dtype == np.int64 and samples.shape == (n,)
    result = _check_gauss(samples, sigma_sq)
    assert result.passed, str(result)


@pytest.mark.parametrize("sigma_sq", [Fraction(1, 4), Fraction(11449, 400), Fraction(10**4)])
def test_scalar_discrete_gaussian_fits_pmf(sigma_sq: Fraction) -> None:
    samples = np.array([sample_discrete_gaussian_scalar(sigma_sq) for _ in range(15_000)])
    result = _check_gauss(samples, sigma_sq)
    assert result.passed, str(result)


@pytest.mark.parametrize("scale", [Fraction(1, 3), Fraction(1), Fraction(7, 2), Fraction(10**6, 7)])
def test_vectorised_discrete_laplace_fits_pmf(scale: Fraction) -> None:
    samples = sample_discrete_laplace(scale, 300_000)
    result = _check_laplace(samples, scale)
    assert result.passed, str(result)


@pytest.mark.parametrize("scale", [Fraction(1, 3), Fraction(5, 2), Fraction(1000)])
def test_scalar_discrete_laplace_fits_pmf(scale: Fraction) -> None:
    samples = np.array([sample_discrete_laplace_scalar(scale) for _ in range(20_000)])
    result = _check_laplace(samples, scale)
    assert result.passed, str(result)


def test_sample_mean_and_variance_at_fixed_point_scale() -> None:
    sigma_sq = FIXED_POINT_SIGMA**2
    n = 400_000
    samples = sample_discrete_gaussian(sigma_sq, n).astype(np.float64)
    var = discrete_gaussian_variance(sigma_sq)
    # z-tests at |z| < 5.3 (two-sided 1e-7); the variance of x^2 is 2 var^2 for a Gaussian.
    assert abs(samples.mean()) < 5.3 * math.sqrt(var / n)
    assert abs((samples**2).mean() - var) < 5.3 * var * math.sqrt(2.0 / n)


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 3), Fraction(1), Fraction(5, 2)])
def test_bernoulli_exp_scalar_and_vectorised(gamma: Fraction) -> None:
    p = math.exp(-gamma)
    scalar = sum(sample_bernoulli_exp(gamma) for _ in range(20_000))
    assert dp_gof.binomial_ok(scalar, 20_000, p)
    nums = np.full(200_000, gamma.numerator, dtype=np.int64)
    vec = int(samplers._bernoulli_exp_neg_vec(nums, gamma.denominator).sum())
    assert dp_gof.binomial_ok(vec, 200_000, p)


def test_exact_fallbacks_keep_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the int64 headroom so every exact Python-int fallback runs on many lanes."""
    monkeypatch.setattr(samplers, "_LANE_LIMIT", 1 << 20)
    sigma_sq = Fraction(2**18 + 1)  # K-loop bound 2p*K, u + t*v, and q*a^2 all cross 2**20
    plan = samplers._gaussian_plan(sigma_sq)
    assert plan is not None
    assert 2 * plan.acc_den > samplers._LANE_LIMIT  # K >= 2 falls back
    assert (samplers._LANE_LIMIT - plan.lap_t) // plan.lap_t <= 3  # v > 3 falls back (~2%)
    assert plan.y_cap < 4 * math.isqrt(sigma_sq.numerator)  # |y| > y_cap falls back (~2%)
    result = _check_gauss(sample_discrete_gaussian(sigma_sq, 150_000), sigma_sq)
    assert result.passed, str(result)
    scale = Fraction(300_001, 2)
    result = _check_laplace(sample_discrete_laplace(scale, 150_000), scale)
    assert result.passed, str(result)


def test_parameters_too_wide_for_int64_use_scalar_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samplers, "_LANE_LIMIT", 1 << 20)
    sigma_sq = Fraction(2**21 + 2, 7)  # numerator above the (shrunk) limit
    assert sigma_sq.numerator > samplers._LANE_LIMIT
    assert samplers._gaussian_plan(sigma_sq) is None
    result = _check_gauss(sample_discrete_gaussian(sigma_sq, 5_000), sigma_sq)
    assert result.passed, str(result)
    scale = Fraction(2**21 + 1, 2**10)
    assert scale.numerator > samplers._LANE_LIMIT
    result = _check_laplace(sample_discrete_laplace(scale, 5_000), scale)
    assert result.passed, str(result)


def test_friendly_sigma_sq_rounds_up_onto_fast_path() -> None:
    for raw in (Fraction(1, 3), Fraction(28.6225), FIXED_POINT_SIGMA**2, Fraction(2**70 + 1, 7)):
        friendly = samplers.sampler_friendly_sigma_sq(raw)
        assert friendly >= raw
        assert friendly - raw <= max(raw, 1) * Fraction(1, 2**38)
        assert friendly.numerator < 2**40 or friendly.denominator == 1
        if friendly < 2**50:
            assert samplers._gaussian_plan(friendly) is not None


# ------------------------------------------------------------------ parameter validation


@pytest.mark.parametrize("bad", [0, -1, Fraction(-1, 2)])
def test_non_positive_scale_is_a_config_error(bad: int | Fraction) -> None:
    with pytest.raises(ConfigError):
        sample_discrete_gaussian(bad, 3)
    with pytest.raises(ConfigError):
        sample_discrete_laplace(bad, 3)


def test_float_scale_is_refused() -> None:
    with pytest.raises(TypeError, match="Fraction"):
        sample_discrete_gaussian(5.35**2, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sample_discrete_laplace_scalar(2.0)  # type: ignore[arg-type]


def test_size_zero_and_negative() -> None:
    assert sample_discrete_gaussian(Fraction(4), 0).shape == (0,)
    with pytest.raises(ConfigError):
        sample_discrete_laplace(Fraction(4), -1)


# ------------------------------------------------------------ wrong samplers must fail


def _rounded_gaussian(sigma: float, n: int, seed: int) -> NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    return np.rint(rng.normal(0.0, sigma, n)).astype(np.int64)


@pytest.mark.parametrize(
    ("sigma_sq", "n"),
    [(Fraction(11449, 400), 300_000), (FIXED_POINT_SIGMA**2, 1_000_000)],
)
def test_rounded_gaussian_with_sigma_2_percent_high_fails(sigma_sq: Fraction, n: int) -> None:
    wrong = _rounded_gaussian(1.02 * math.sqrt(sigma_sq), n, seed=1)
    assert not _check_gauss(wrong, sigma_sq).passed


def test_rounded_gaussian_with_right_sigma_fails_at_small_sigma() -> None:
    # At sigma = 1 rounding a continuous Gaussian is visibly not the discrete Gaussian.
    wrong = _rounded_gaussian(1.0, 300_000, seed=2)
    assert not _check_gauss(wrong, Fraction(1)).passed


def test_shifted_discrete_gaussian_fails() -> None:
    sigma_sq = Fraction(11449, 400)
    shifted = sample_discrete_gaussian(sigma_sq, 300_000) + 1
    assert not _check_gauss(shifted, sigma_sq).passed
    big = FIXED_POINT_SIGMA**2
    shifted = sample_discrete_gaussian(big, 1_000_000) + int(0.02 * float(FIXED_POINT_SIGMA))
    assert not _check_gauss(shifted, big).passed


def test_discrete_laplace_with_biased_sign_fails() -> None:
    rng = np.random.default_rng(3)
    scale = Fraction(7, 2)
    magnitudes = np.abs(sample_discrete_laplace(scale, 300_000))
    signs = np.where(rng.random(magnitudes.size) < 0.46, -1, 1)
    assert not _check_laplace(signs * magnitudes, scale).passed


def _laplace_without_zero_rejection(t: int) -> int:
    """CKS Algorithm 2 with a classic bug: '-0' is not rejected, so 0 is counted twice."""
    while True:
        u = secrets.randbelow(t)
        if not samplers._bernoulli_exp_neg_unit(u, t):
            continue
        v = 0
        while samplers._bernoulli_exp_neg_unit(1, 1):
            v += 1
        y = u + t * v
        return -y if secrets.randbelow(2) else y


def test_laplace_that_double_counts_zero_fails() -> None:
    wrong = np.array([_laplace_without_zero_rejection(1) for _ in range(20_000)])
    assert not _check_laplace(wrong, Fraction(1)).passed


def test_gaussian_with_wrong_centre_in_rejection_step_fails() -> None:
    """Algorithm 3 with the acceptance centred at sigma instead of sigma^2/t is wrong."""
    sigma_sq = Fraction(11449, 400)
    p, q = sigma_sq.numerator, sigma_sq.denominator
    t = math.isqrt(p // q) + 1

    def wrong_sample() -> int:
        while True:
            y = samplers._discrete_laplace_scalar(t, 1)
            a = abs(y) - t  # should be |y| - sigma^2/t
            if samplers._bernoulli_exp_neg(a * a * q, 2 * p):
                return y

    wrong = np.array([wrong_sample() for _ in range(20_000)])
    assert not _check_gauss(wrong, sigma_sq).passed
