"""The bulk CSPRNG helpers: exact uniformity and exact Bernoulli probabilities."""

from __future__ import annotations

import dp_gof
import numpy as np
import pytest
from scipy import stats

from mpc.dp import _csprng


@pytest.mark.parametrize("bound", [2, 3, 7, 256, 257, 1000, 2**24 + 1, 2**40 + 3, 2**63])
def test_uniform_below_is_in_range_and_uniform(bound: int) -> None:
    n = 200_000
    values = _csprng.uniform_below(bound, n)
    assert values.dtype == np.int64 and values.size == n
    assert int(values.min()) >= 0 and int(values.max()) < bound
    # Chi-square over 50 equal-width classes of [0, bound) (or one per value if fewer).
    classes = min(bound, 50)
    edges = [bound * k // classes for k in range(classes + 1)]
    observed = np.histogram(values.astype(np.float64), bins=np.array(edges, dtype=np.float64))[0]
    expected = n * np.diff(np.array(edges, dtype=np.float64)) / bound
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    assert chi2 < stats.chi2.isf(dp_gof.ALPHA, classes - 1)


def test_uniform_below_catches_modulo_bias_of_a_naive_sampler() -> None:
    """The same check flags ``word % bound`` for a bound that makes modulo bias large."""
    bound = 3 * 2**61  # 2**64 mod bound = 2**62: values below 2**62 are twice as likely
    rng = np.random.default_rng(4)
    naive = (rng.integers(0, 2**64, 200_000, dtype=np.uint64) % np.uint64(bound)).astype(np.float64)
    observed = np.histogram(naive, bins=3, range=(0.0, float(bound)))[0]
    expected = np.full(3, 200_000 / 3)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    assert chi2 > stats.chi2.isf(dp_gof.ALPHA, 2)
    honest = _csprng.uniform_below(bound, 200_000).astype(np.float64)
    observed = np.histogram(honest, bins=3, range=(0.0, float(bound)))[0]
    assert float(np.sum((observed - expected) ** 2 / expected)) < stats.chi2.isf(dp_gof.ALPHA, 2)


@pytest.mark.parametrize(
    ("numerator", "bound"),
    [
        (0, 2**40 + 3),
        (2**40 + 3, 2**40 + 3),
        (1, 3),
        (5, 9),
        (2**8, 2**8 + 1),  # top byte of n equals top byte of the bound
        (2**32 + 2**31, 2**33 - 1),
        (2**39 + 1, 2**40 + 3),  # n's top byte is right at a byte boundary
        (12345678901, 2**41 - 5),
        (2**61 + 17, 2**62),
    ],
)
def test_bernoulli_below_has_exact_probability(numerator: int, bound: int) -> None:
    n = 200_000
    hits = int(_csprng.bernoulli_below(np.full(n, numerator, dtype=np.int64), bound).sum())
    assert dp_gof.binomial_ok(hits, n, numerator / bound)


def test_bernoulli_below_mixed_lanes() -> None:
    bound = 2**40 + 12345
    nums = np.array([0, bound, bound // 3, bound // 2 + 7] * 50_000, dtype=np.int64)
    out = _csprng.bernoulli_below(nums, bound)
    assert not out[0::4].any() and out[1::4].all()
    assert dp_gof.binomial_ok(int(out[2::4].sum()), 50_000, (bound // 3) / bound)
    assert dp_gof.binomial_ok(int(out[3::4].sum()), 50_000, (bound // 2 + 7) / bound)


def test_random_ints_widths() -> None:
    for bits in (1, 7, 8, 12, 24, 41, 56, 63):
        values = _csprng.random_ints(50_000, bits)
        assert int(values.min()) >= 0 and int(values.max()) < 2**bits
        # The top bit is set about half the time (catches a wrongly padded byte).
        top = int(((values >> (bits - 1)) & 1).sum())
        assert dp_gof.binomial_ok(top, 50_000, 0.5)


def test_random_bits_are_fair() -> None:
    bits = _csprng.random_bits(1_000_001)
    assert bits.size == 1_000_001
    assert dp_gof.binomial_ok(int(bits.sum()), bits.size, 0.5)


def test_uniform_below_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        _csprng.uniform_below(0, 1)
    with pytest.raises(ValueError):
        _csprng.uniform_below(2**63 + 1, 1)
