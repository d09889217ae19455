"""zCDP accounting, conversion, calibration and the integer ledger model."""

from __future__ import annotations

import math
from fractions import Fraction

import dp_accounting
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.dp import accountant as acc
from mpc.dp import rdp
from mpc.dp.samplers import _gaussian_plan
from mpc.errors import ConfigError, PrivacyBudgetError

DENSE_ORDERS = [float(a) for a in 1.0 + np.geomspace(0.011, 400.0, 6000)]  # step 0.18%


def _dp_accounting_gaussian(sigma: float, delta: float, *, orders: list[float]) -> float:
    """dp-accounting's epsilon for one Gaussian of noise multiplier sigma (RDP = a/(2 s^2))."""
    accountant = dp_accounting.rdp.RdpAccountant(orders)
    accountant.compose(dp_accounting.GaussianDpEvent(sigma))
    return float(accountant.get_epsilon(delta))


def test_known_value_sigma_5_35() -> None:
    rho = acc.rho_discrete_gaussian(1, Fraction("5.35"))
    assert rho == Fraction(200, 11449)  # 1 / (2 * 5.35^2), exactly
    eps = float(acc.epsilon_for_rho(rho, 1e-6))
    assert eps == pytest.approx(0.837, abs=5e-4)
    default = _dp_accounting_gaussian(5.35, 1e-6, orders=list(rdp.DEFAULT_ORDERS))
    assert eps <= default  # the continuous optimum over orders is at least as good


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0, 5.35, 10.0, 50.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_zcdp_epsilon_matches_dp_accounting(sigma: float, delta: float) -> None:
    theirs = _dp_accounting_gaussian(sigma, delta, orders=DENSE_ORDERS)
    rho = acc.rho_discrete_gaussian(1, Fraction(sigma))
    ours = float(acc.epsilon_for_rho(rho, delta))
    # Ours optimises over all a > 1; theirs over a dense grid: equal to ~1e-6, ours never above.
    assert ours <= theirs * (1 + 1e-8) + 2e-12
    assert ours >= theirs * (1 - 1e-5)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.35, 20.0])
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 4.0])
def test_zcdp_delta_matches_dp_accounting(sigma: float, epsilon: float) -> None:
    accountant = dp_accounting.rdp.RdpAccountant(DENSE_ORDERS)
    accountant.compose(dp_accounting.GaussianDpEvent(sigma))
    theirs = accountant.get_delta(epsilon)
    ours = acc.delta_for_rho(acc.rho_discrete_gaussian(1, Fraction(sigma)), epsilon)
    # Rounded up by a relative 1e-9 in log space; ours can be smaller where the optimal order
    # lies beyond the grid (very small deltas).
    if theirs < 1e-300:  # underflow: ours is rounded up to the least positive float
        assert 0 < ours <= 1e-300
        return
    assert ours <= theirs * (1 + 1e-6)
    assert math.log(ours) == pytest.approx(math.log(theirs), rel=1e-3)


def test_epsilon_and_delta_are_inverse() -> None:
    for rho in (Fraction(1, 1000), Fraction(1, 50), Fraction(1, 2), Fraction(3)):
        for delta in (1e-4, 1e-8):
            eps = acc.epsilon_for_rho(rho, delta)
            back = acc.delta_for_rho(rho, eps)
            assert back <= delta * (1 + 1e-6)
            assert back >= delta * 0.99  # eps is rounded up only a hair


def test_rho_for_epsilon_is_the_largest_fitting_grid_value() -> None:
    for epsilon, delta in ((1.0, 1e-6), (0.1, 1e-9), (8.0, 1e-5)):
        rho = acc.rho_for_epsilon(epsilon, delta)
        assert acc.epsilon_for_rho(rho, delta) <= Fraction(epsilon)
        step = Fraction(1, acc.UNITS_PER_ONE)
        assert acc.epsilon_for_rho(rho + step, delta) > Fraction(epsilon)
    with pytest.raises(ConfigError):
        acc.rho_for_epsilon(1e-15, 1e-9)


def test_calibration_meets_target_and_uses_fast_sampler() -> None:
    cal = acc.calibrate_discrete_gaussian(1.0, 1e-6, 2**16)
    assert cal.rho == acc.rho_discrete_gaussian_sq(2**16, cal.sigma_sq)
    assert cal.rho <= acc.rho_for_epsilon(1.0, 1e-6)
    assert acc.epsilon_for_rho(cal.rho, 1e-6) <= 1
    assert _gaussian_plan(cal.sigma_sq) is not None
    assert cal.sigma == pytest.approx(4.5309 * 2**16, rel=1e-4)
    scale = acc.calibrate_discrete_laplace(0.5, 3)
    assert scale >= 6 and acc.epsilon_discrete_laplace(3, scale) <= Fraction(1, 2)


def test_pure_epsilon_and_composition() -> None:
    assert acc.epsilon_discrete_laplace(2, Fraction(4)) == Fraction(1, 2)
    assert acc.rho_from_pure_epsilon(Fraction(1, 2)) == Fraction(1, 8)
    assert acc.compose_rho(Fraction(1, 3), Fraction(1, 6), 0) == Fraction(1, 2)
    with pytest.raises(ConfigError):
        acc.compose_rho(Fraction(-1, 3))


def test_distributed_rho() -> None:
    # One honest share: exactly the discrete Gaussian.
    assert acc.rho_distributed_discrete_gaussian(3, Fraction(8), 1) == Fraction(9, 16)
    # Large per-party sigma: tau underflows, but at least one unit is charged for it.
    rho = acc.rho_distributed_discrete_gaussian(2**16, Fraction(2**40), 4)
    exact_part = Fraction(2**32, 2 * 4 * 2**40)
    assert exact_part < rho <= exact_part + Fraction(1, acc.UNITS_PER_ONE)
    # Small per-party sigma: the KLS correction is material and matches the formula.
    h, var = 4, Fraction(1, 2)
    tau = 10 * sum(math.exp(-2 * math.pi**2 * 0.5 * k / (k + 1)) for k in range(1, h))
    s = math.sqrt(h * 0.5)
    expected = 1 / (2 * h * 0.5) + tau / s + tau**2 / 2
    got = acc.rho_distributed_discrete_gaussian(1, var, h)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    assert float(got) >= expected
    with pytest.raises(ConfigError, match="1/2"):
        acc.rho_distributed_discrete_gaussian(1, Fraction(1, 5), 3)


# ----------------------------------------------------------------------------- ledger


def test_costs_round_up_and_budgets_round_down() -> None:
    third = Fraction(1, 3)
    cost = acc.PrivacyCost.from_rho(third)
    assert cost.rho >= third and cost.rho - third < Fraction(1, acc.UNITS_PER_ONE)
    budget = acc.Budget.from_epsilon_delta(third, Fraction(1, 10**6))
    assert budget.epsilon <= third and third - budget.epsilon < Fraction(1, acc.UNITS_PER_ONE)


def test_budget_is_enforced_exactly_at_the_boundary() -> None:
    delta = Fraction(1, 10**6)
    rho = acc.rho_for_epsilon(1.0, delta)
    budget = acc.Budget.from_epsilon_delta(1.0, delta)
    fitting = acc.PrivacyCost.from_rho(rho)
    assert budget.allows(acc.PrivacyCost(), fitting)
    assert not budget.allows(acc.PrivacyCost(), acc.PrivacyCost(fitting.rho_units + 1))
    assert budget.remaining_rho(acc.PrivacyCost()) == rho
    spent = budget.charge(acc.PrivacyCost(), fitting)
    with pytest.raises(PrivacyBudgetError) as info:
        budget.charge(spent, acc.PrivacyCost(rho_units=1))
    assert "budget" in str(info.value)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.fractions(min_value=0, max_value=1), min_size=1, max_size=20))
def test_ledger_composition_is_exact_and_order_free(rhos: list[Fraction]) -> None:
    costs = [acc.PrivacyCost.from_rho(r) for r in rhos]
    total = sum(costs, acc.PrivacyCost())
    assert total == sum(reversed(costs), acc.PrivacyCost())
    assert total.rho >= sum(rhos, Fraction(0))  # each cost rounded up
    assert total.rho_units == sum(acc.units_up(r) for r in rhos)


def test_subsampled_rounds_in_the_ledger() -> None:
    rho_round = acc.rho_discrete_gaussian(1, Fraction(11, 10))
    cost = acc.PrivacyCost.poisson_subsampled(0.01, rho_round, 1000)
    assert len(cost.rdp_units) == len(rdp.INTEGER_ORDERS)
    eps = cost.epsilon(1e-5)
    # Upper bound on the continuous-Gaussian (MTZ) value, and far below no subsampling.
    curve = rdp.scale_rdp(rdp.rdp_poisson_subsampled_gaussian(0.01, 1.1, rdp.INTEGER_ORDERS), 1000)
    mtz, _ = rdp.epsilon_from_rdp(rdp.INTEGER_ORDERS, curve, 1e-5)
    assert mtz <= float(eps) < 1.3 * mtz
    assert eps < acc.epsilon_for_rho(1000 * rho_round, 1e-5)
    # Mixing with zCDP costs adds at every order.
    mixed = cost + acc.PrivacyCost.from_rho(Fraction(1, 100))
    assert mixed.epsilon(1e-5) > eps
    assert (mixed + acc.PrivacyCost()) == mixed


def test_cost_validation() -> None:
    with pytest.raises(TypeError):
        acc.PrivacyCost.from_rho(0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        acc.PrivacyCost(rho_units=-1)
    with pytest.raises(ConfigError):
        acc.PrivacyCost(rdp_units=(1, 2))
    with pytest.raises(ConfigError):
        acc.Budget.from_epsilon_delta(1.0, 0)
