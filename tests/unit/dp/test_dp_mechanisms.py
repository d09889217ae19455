"""Fixed-point sensitivities, the mean, budget splits and error bars."""

from __future__ import annotations

import math
from fractions import Fraction

import dp_gof
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.dp import mechanisms as mech
from mpc.dp.accountant import rho_discrete_gaussian_sq
from mpc.dp.samplers import sample_discrete_gaussian
from mpc.errors import ConfigError


def test_scalar_sensitivities() -> None:
    assert mech.count_sensitivity() == 1
    assert mech.histogram_sensitivity() == 1
    assert mech.count_sensitivity(frac_bits=4) == 16
    assert mech.sum_sensitivity(-3, 2, 0) == 3
    assert mech.sum_sensitivity(Fraction(-1, 3), Fraction(1, 4), 16) == math.ceil(2**16 / 3)
    assert mech.centred_sum_sensitivity(0, 1, 16) == 2**15
    assert mech.centred_sum_sensitivity(Fraction(1, 10), Fraction(7, 10), 16) == math.ceil(
        0.3 * 2**16
    )
    assert mech.fixed_point_bound(Fraction(-5, 4), 2) == 5
    with pytest.raises(ConfigError):
        mech.sum_sensitivity(2, 1, 16)


def test_vector_sensitivities() -> None:
    assert mech.clipped_sum_sensitivity(1, 16) == 2**16
    # Clipping before rounding: + sqrt(dim)/2 of slack, sqrt bounded from above.
    assert mech.clipped_sum_sensitivity(1, 16, dim=100) == 2**16 + 5
    assert mech.clipped_sum_sensitivity(1, 16, dim=101) == 2**16 + 6
    assert mech.gram_sensitivity(Fraction(3, 2), 8) == (3 * 2**7) ** 2
    assert mech.cross_sensitivity(2, Fraction(1, 2), 8) == 2**9 * 2**7


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=0, max_value=20),
    st.data(),
)
def test_rounding_slack_covers_encoded_vectors(
    dim: int, frac_bits: int, data: st.DataObject
) -> None:
    """A vector of norm <= C, rounded coordinate-wise, has norm <= vector_norm_bound(dim=d)."""
    raw = data.draw(st.lists(st.floats(-1, 1, allow_nan=False), min_size=dim, max_size=dim))
    vec = np.array(raw)
    norm = float(np.linalg.norm(vec))
    if norm > 1:
        vec = vec / norm
    encoded = np.rint(vec * 2**frac_bits).astype(np.int64)
    bound = mech.vector_norm_bound(1, frac_bits, dim=dim)
    assert int(np.sum(encoded * encoded)) <= bound * bound


def test_outer_product_sensitivity_bounds_upper_triangle() -> None:
    rng = np.random.default_rng(6)
    bound = mech.vector_norm_bound(1, 10)
    for _ in range(200):
        x = rng.integers(-(2**10), 2**10, 6)
        x = (x * (bound / max(1.0, float(np.linalg.norm(x))))).astype(np.int64)
        if int(np.sum(x * x)) > bound * bound:
            continue
        upper = np.triu(np.outer(x, x))
        assert int(np.sum(upper * upper)) <= mech.gram_sensitivity(1, 10) ** 2


def test_split_and_calibrate_mean() -> None:
    rho_sum, rho_count = mech.split_mean_budget(Fraction(1, 10))
    assert rho_sum == rho_count == Fraction(1, 20)
    rho_sum, rho_count = mech.split_mean_budget(Fraction(1, 10), Fraction(1, 5))
    assert rho_sum + rho_count == Fraction(1, 10) and rho_count == Fraction(1, 50)
    with pytest.raises(ConfigError):
        mech.split_mean_budget(Fraction(1, 10), 1)
    noise = mech.calibrate_mean(Fraction(1, 10), 0, 100, 16)
    assert noise.sum_sensitivity == 50 * 2**16
    assert noise.rho <= Fraction(1, 10)
    assert noise.rho == rho_discrete_gaussian_sq(
        noise.sum_sensitivity, noise.sum_sigma_sq
    ) + rho_discrete_gaussian_sq(1, noise.count_sigma_sq)
    assert noise.rho > Fraction(1, 10) * (1 - Fraction(1, 10**9))


@settings(max_examples=120, deadline=None)
@given(
    st.fractions(min_value=-1000, max_value=1000),
    st.integers(min_value=-50, max_value=10**6),
    st.fractions(min_value=-100, max_value=100),
    st.fractions(min_value=0, max_value=100),
)
def test_noisy_mean_is_clamped_post_processing(
    noisy_sum: Fraction, noisy_count: int, lower: Fraction, width: Fraction
) -> None:
    upper = lower + width
    got = mech.noisy_mean(noisy_sum, noisy_count, lower, upper)
    assert lower <= got <= upper
    raw = (lower + upper) / 2 + noisy_sum / max(1, noisy_count)
    if lower <= raw <= upper:
        assert got == raw


def test_noisy_mean_recovers_the_mean_without_noise() -> None:
    data = [Fraction(v) for v in (3, 5, 9, 10)]
    lower, upper = Fraction(0), Fraction(10)
    centred = sum(x - 5 for x in data)
    assert mech.noisy_mean(centred, len(data), lower, upper) == Fraction(27, 4)
    assert mech.noisy_mean(0, 0, lower, upper) == 5  # max(1, n): no division by zero


def test_error_bound_holds_empirically() -> None:
    sigma_sq = Fraction(11449, 400)
    t = mech.error_bound(sigma_sq)
    assert t == pytest.approx(math.sqrt(2 * 28.6225 * math.log(40)), rel=1e-9)
    noise = sample_discrete_gaussian(sigma_sq, 200_000)
    exceed = int(np.sum(np.abs(noise) > t))
    # The true tail is ~0.9%: the bound (5%) is valid and conservative.
    assert exceed / noise.size < 0.05
    assert not dp_gof.binomial_ok(exceed, noise.size, 0.05)
    with pytest.raises(ConfigError):
        mech.error_bound(sigma_sq, 1)


def test_distributed_sigma_sq() -> None:
    assert mech.honest_noise_shares(5, 2) == 3
    per_party = mech.distributed_sigma_sq(Fraction(9), 5, 2)
    assert per_party == Fraction(3)
    odd = mech.distributed_sigma_sq(Fraction(10), 3, 0)
    assert odd >= Fraction(10, 3) and odd - Fraction(10, 3) < Fraction(1, 2**36)
    assert mech.distributed_total_sigma_sq(per_party, 5) == 15
    for n_live, colluders in ((3, 3), (2, 5), (1, 1)):
        with pytest.raises(ConfigError, match="colluders") as info:
            mech.distributed_sigma_sq(Fraction(9), n_live, colluders)
        assert "n_live" in str(info.value)
    with pytest.raises(ConfigError):
        mech.distributed_sigma_sq(Fraction(9), 0, 0)
