"""Distributed noise: the sum of per-party discrete Gaussians is what the accounting assumes."""

from __future__ import annotations

import math
from fractions import Fraction

import dp_gof
import numpy as np
import pytest
from numpy.typing import NDArray

from mpc.dp.distributions import discrete_gaussian_pmf, discrete_gaussian_variance
from mpc.dp.mechanisms import distributed_sigma_sq, honest_noise_shares
from mpc.dp.samplers import sample_discrete_gaussian

TARGET_SIGMA_SQ = Fraction(6)  # small, so the convolution is visibly not a discrete Gaussian


def _convolved_pmf(sigma_p_sq: Fraction, parties: int) -> tuple[int, NDArray[np.float64]]:
    """Exact (to double precision) pmf of the sum of ``parties`` i.i.d. N_Z(0, sigma_p_sq)."""
    half = math.ceil(40 * math.sqrt(sigma_p_sq)) + 5
    single = discrete_gaussian_pmf(np.arange(-half, half + 1), sigma_p_sq)
    pmf = single
    for _ in range(parties - 1):
        pmf = np.convolve(pmf, single)
    return -half * parties, pmf


@pytest.mark.parametrize(("n_live", "colluders"), [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_sum_of_party_noises_matches_the_convolution(n_live: int, colluders: int) -> None:
    sigma_p_sq = distributed_sigma_sq(TARGET_SIGMA_SQ, n_live, colluders)
    draws = 200_000
    total = np.zeros(draws, dtype=np.int64)
    for _party in range(n_live):  # each party samples independently
        total += sample_discrete_gaussian(sigma_p_sq, draws)
    offset, pmf = _convolved_pmf(sigma_p_sq, n_live)

    def conv_pmf(x: NDArray[np.int64]) -> NDArray[np.float64]:
        idx = x - offset
        inside = (idx >= 0) & (idx < pmf.size)
        out = np.zeros(x.size, dtype=np.float64)
        out[inside] = pmf[idx[inside]]
        return out

    result = dp_gof.check(total, conv_pmf, offset, offset + pmf.size - 1)
    assert result.passed, str(result)


@pytest.mark.parametrize(("n_live", "colluders"), [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_honest_noise_reaches_the_target_variance(n_live: int, colluders: int) -> None:
    honest = honest_noise_shares(n_live, colluders)
    sigma_p_sq = distributed_sigma_sq(TARGET_SIGMA_SQ, n_live, colluders)
    offset, pmf = _convolved_pmf(sigma_p_sq, honest)
    xs = np.arange(offset, offset + pmf.size, dtype=np.float64)
    exact_var = math.fsum(xs * xs * pmf)
    assert exact_var == pytest.approx(honest * discrete_gaussian_variance(sigma_p_sq), rel=1e-9)
    # Each share's variance is below sigma_p^2 by a relative ~8 pi^2 s^2 exp(-2 pi^2 s) (Poisson
    # summation; 2.5e-11 at s = 1.5), so the honest sum reaches the target up to that deficit.
    s = float(sigma_p_sq)
    deficit = 8 * math.pi**2 * s * s * math.exp(-2 * math.pi**2 * s)
    assert deficit < 1e-10
    assert exact_var >= float(TARGET_SIGMA_SQ) * (1 - deficit) * (1 - 1e-13)
    assert exact_var <= float(TARGET_SIGMA_SQ) * (1 + 1e-13)
    # The honest parties' sampled sum has that variance (z-test, |z| < 5.3).
    draws = 200_000
    total = sum(
        (sample_discrete_gaussian(sigma_p_sq, draws) for _ in range(honest)),
        start=np.zeros(draws, dtype=np.int64),
    ).astype(np.float64)
    assert abs(float(np.mean(total**2)) - exact_var) < 5.3 * exact_var * math.sqrt(2 / draws)


def test_convolution_is_not_a_discrete_gaussian_but_close() -> None:
    """Why the accounting uses the Kairouz-Liu-Steinke bound instead of D^2/(2 sigma^2)."""
    sigma_p_sq = Fraction(1, 2)
    offset, pmf = _convolved_pmf(sigma_p_sq, 4)
    xs = np.arange(offset, offset + pmf.size)
    dg = discrete_gaussian_pmf(xs, 4 * sigma_p_sq)
    gap = float(np.max(np.abs(pmf - dg)))
    assert 1e-4 < gap < 0.05
