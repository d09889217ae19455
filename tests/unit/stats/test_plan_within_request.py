"""A plan with many noise groups never charges more than the job asked for.

Each group's cost is charged rounded up to the ledger grid; without rounding each group's
share down onto that grid first, twelve columns at epsilon 1 recorded 1.0000000014 and a
job asking for a dataset's whole remaining budget was refused.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from mpc import dp
from mpc.dp.accountant import units_up
from mpc.protocol.spec import NoiseMode, Statistic
from mpc.stats.privacy import plan_noise
from tests.unit.stats._analyses_fake import make_spec

BOUNDS = {f"c{i}": (0.0, 10.0 * (i + 1)) for i in range(12)}


@pytest.mark.parametrize("statistic", [Statistic.COVARIANCE, Statistic.CORRELATION])
@pytest.mark.parametrize("noise", [NoiseMode.CENTRAL, NoiseMode.DISTRIBUTED])
@pytest.mark.parametrize("epsilon", [1.0, 0.3, 5.0])
def test_zcdp_cost_within_the_request(
    statistic: Statistic, noise: NoiseMode, epsilon: float
) -> None:
    spec = make_spec(statistic, BOUNDS, epsilon=epsilon, delta=1e-6, noise=noise)
    plan = plan_noise(spec)
    assert plan is not None and len(plan.groups) > 12
    requested = dp.rho_for_epsilon(epsilon, 1e-6)
    assert plan.cost.rho_units <= units_up(requested)


@pytest.mark.parametrize("epsilon", [1.0, 0.7, 3.0])
def test_pure_epsilon_cost_within_the_request(epsilon: float) -> None:
    spec = make_spec(Statistic.COVARIANCE, BOUNDS, epsilon=epsilon, delta=0.0)
    plan = plan_noise(spec)
    assert plan is not None
    assert plan.cost.pure_units <= units_up(Fraction(epsilon))
