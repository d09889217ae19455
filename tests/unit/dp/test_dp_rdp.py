"""RDP accounting against dp-accounting (Google's RdpAccountant), plus exact checks."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp
from scipy.special import logsumexp

from mpc.dp import rdp
from mpc.errors import ConfigError

GRID = [(q, z) for q in (0.001, 0.01, 0.1, 0.5) for z in (0.7, 1.0, 2.0, 5.35)]


@pytest.mark.parametrize(("q", "z"), GRID)
def test_subsampled_gaussian_rdp_matches_dp_accounting(q: float, z: float) -> None:
    ours = np.array(rdp.rdp_poisson_subsampled_gaussian(q, z, rdp.DEFAULT_ORDERS))
    theirs = dpa_rdp._compute_rdp_poisson_subsampled_gaussian(q, z, rdp.DEFAULT_ORDERS)
    finite = np.isfinite(theirs)
    assert np.array_equal(finite, np.isfinite(ours))
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-8, atol=1e-11)
    assert np.all(ours[finite] >= theirs[finite])  # rounded up, never down
    # Composition over rounds and conversion, as RdpAccountant.get_epsilon/get_delta do.
    for rounds in (1, 100, 10_000):
        curve = rdp.scale_rdp(tuple(ours), rounds)
        eps_theirs, _ = dpa_rdp.compute_epsilon(rdp.DEFAULT_ORDERS, theirs * rounds, 1e-6)
        eps_ours, _ = rdp.epsilon_from_rdp(rdp.DEFAULT_ORDERS, curve, 1e-6)
        assert eps_theirs <= eps_ours <= eps_theirs * (1 + 1e-7) + 1e-7
        delta_theirs, _ = dpa_rdp.compute_delta(rdp.DEFAULT_ORDERS, theirs * rounds, 1.0)
        delta_ours, _ = rdp.delta_from_rdp(rdp.DEFAULT_ORDERS, curve, 1.0)
        assert delta_theirs <= delta_ours <= delta_theirs * (1 + 1e-6) + 1e-300


@pytest.mark.parametrize(("q", "z", "rounds"), [(0.01, 1.1, 1000), (0.1, 2.0, 50)])
def test_composed_epsilon_matches_rdp_accountant(q: float, z: float, rounds: int) -> None:
    """Against the public RdpAccountant API, for two typical training runs."""
    accountant = dp_accounting.rdp.RdpAccountant(list(rdp.DEFAULT_ORDERS))
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    curve = rdp.scale_rdp(rdp.rdp_poisson_subsampled_gaussian(q, z), rounds)
    ours, _ = rdp.epsilon_from_rdp(rdp.DEFAULT_ORDERS, curve, 1e-5)
    theirs = accountant.get_epsilon(1e-5)
    assert theirs <= ours <= theirs * (1 + 1e-7) + 1e-7


def test_conversion_matches_dp_accounting_on_arbitrary_curves() -> None:
    rng = np.random.default_rng(5)
    orders = [1.5, 2.0, 3.0, 5.0, 8.0, 16.0, 32.0, 64.0]
    for _ in range(200):
        curve = list(np.cumsum(rng.exponential(0.3, len(orders))))
        delta = float(10 ** rng.uniform(-9, -2))
        theirs, _ = dpa_rdp.compute_epsilon(orders, curve, delta)
        ours, _ = rdp.epsilon_from_rdp(orders, curve, delta)
        assert theirs <= ours <= theirs * (1 + 1e-8) + 1e-12
        eps = float(rng.uniform(0.1, 5))
        theirs_d, _ = dpa_rdp.compute_delta(orders, curve, eps)
        ours_d, _ = rdp.delta_from_rdp(orders, curve, eps)
        assert theirs_d <= ours_d <= theirs_d * (1 + 1e-6) + 1e-300


def _exact_log_moments_1d(q: float, sigma: float, alpha: int) -> tuple[float, float]:
    """log A_alpha and log B_alpha of the Poisson-subsampled *discrete* Gaussian (shift 1).

    A = E_{mu0}[(mu/mu0)^alpha], B = E_{mu}[(mu0/mu)^alpha], mu = (1-q) mu0 + q mu1, summed over
    the integers in log space.
    """
    half = math.ceil(40 * sigma) + 4 * alpha + 5
    xs = np.arange(-half, half + 1, dtype=np.float64)
    log_w0 = -(xs**2) / (2 * sigma**2)
    log_w1 = -((xs - 1) ** 2) / (2 * sigma**2)
    log_mu0 = log_w0 - logsumexp(log_w0)
    log_mu1 = log_w1 - logsumexp(log_w1)
    log_mu = np.logaddexp(math.log1p(-q) + log_mu0, math.log(q) + log_mu1)
    log_a = float(logsumexp(log_mu0 + alpha * (log_mu - log_mu0)))
    log_b = float(logsumexp(log_mu + alpha * (log_mu0 - log_mu)))
    return log_a, log_b


@pytest.mark.parametrize(("q", "sigma"), [(0.01, 0.8), (0.1, 1.0), (0.3, 2.0), (0.05, 3.0)])
def test_zhu_wang_bound_covers_both_directions_for_the_discrete_gaussian(
    q: float, sigma: float
) -> None:
    orders = [2, 3, 4, 6, 8, 12, 16]
    rho = 1 / (2 * sigma**2)
    bound = rdp.rdp_poisson_subsampled_zcdp(q, rho, orders)
    mtz = rdp.rdp_poisson_subsampled_gaussian(q, sigma, [float(a) for a in orders])
    for alpha, ours, continuous in zip(orders, bound, mtz, strict=True):
        log_a, log_b = _exact_log_moments_1d(q, sigma, alpha)
        # The add direction of the discrete Gaussian equals the continuous (MTZ) value exactly.
        assert log_a / (alpha - 1) == pytest.approx(continuous, rel=3e-9)
        assert ours >= max(log_a, log_b) / (alpha - 1)
        assert ours <= alpha * rho * (1 + 1e-9)


def test_zhu_wang_bound_edge_cases() -> None:
    rho = 0.3
    orders = list(rdp.INTEGER_ORDERS)
    assert rdp.rdp_poisson_subsampled_zcdp(0, rho, orders) == tuple(0.0 for _ in orders)
    full = rdp.rdp_poisson_subsampled_zcdp(1, rho, orders)
    assert full == pytest.approx([a * rho for a in orders], rel=2e-9)
    # Monotone in q.
    low = rdp.rdp_poisson_subsampled_zcdp(0.01, rho, orders)
    high = rdp.rdp_poisson_subsampled_zcdp(0.02, rho, orders)
    assert all(a <= b for a, b in zip(low, high, strict=True))


def test_rdp_parameter_errors() -> None:
    with pytest.raises(ConfigError):
        rdp.rdp_poisson_subsampled_gaussian(1.5, 1.0)
    with pytest.raises(ConfigError):
        rdp.rdp_poisson_subsampled_gaussian(0.1, -1.0)
    with pytest.raises(ConfigError):
        rdp.rdp_poisson_subsampled_zcdp(0.1, 0.5, [2.5])  # type: ignore[list-item]
    with pytest.raises(ConfigError):
        rdp.epsilon_from_rdp([2.0], [0.1], 0.0)
    with pytest.raises(ConfigError):
        rdp.epsilon_from_rdp([1.0], [0.1], 1e-5)
    with pytest.raises(ConfigError):
        rdp.compose_rdp([0.1, 0.2], [0.1])
