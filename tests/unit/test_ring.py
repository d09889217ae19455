from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc import ring
from mpc.errors import InputDataError, QueryError
from mpc.ring import (
    Component,
    check_headroom,
    decode,
    encode,
    encoding_tolerance,
    ring_sum,
)


def test_known_answers() -> None:
    encoded = encode([1.5, -2.25, 0.0, 3.0], 16)
    assert encoded.dtype == np.uint64
    assert encoded.tolist() == [98304, 2**64 - 147456, 0, 196608]
    assert decode(encoded, 16).tolist() == [1.5, -2.25, 0.0, 3.0]


def test_round_half_to_even() -> None:
    assert encode([0.5, 1.5, 2.5, -0.5], 0).view(np.int64).tolist() == [0, 2, 2, 0]


def test_ring_addition_wraps_and_decodes_negative_sums() -> None:
    a = encode([-5.0], 8)
    b = encode([2.0], 8)
    assert decode(ring_sum([a, b]), 8).tolist() == [-3.0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused_without_the_value(bad: float) -> None:
    with pytest.raises(InputDataError, match="NaN or infinity"):
        encode([1.0, bad], 16)


def test_too_large_to_encode() -> None:
    with pytest.raises(InputDataError, match="too large"):
        encode([2.0**50], 16)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20), min_size=2, max_size=6),
    st.integers(0, 24),
)
def test_sum_of_encodings_matches_numpy(parts: list[list[float]], frac_bits: int) -> None:
    width = min(len(p) for p in parts)
    vectors = [np.array(p[:width]) for p in parts]
    secure = decode(ring_sum([encode(v, frac_bits) for v in vectors]), frac_bits)
    plain = np.sum(vectors, axis=0)
    assert np.all(np.abs(secure - plain) <= encoding_tolerance(len(vectors), frac_bits) + 1e-6)


def test_headroom_accepts_what_fits() -> None:
    check_headroom([Component("column 'age'", 120.0)], total_rows=10**9, frac_bits=16)


def test_headroom_refuses_and_says_which_bound_to_change() -> None:
    with pytest.raises(QueryError) as info:
        check_headroom([Component("column 'income'", 1e12)], total_rows=3_000_000, frac_bits=16)
    message = str(info.value)
    assert "column 'income'" in message
    assert "Narrow the bounds" in message and "frac_bits" in message and "max_rows" in message


def test_headroom_suggestions_are_correct() -> None:
    component = Component("column 'x'", 1e6)
    with pytest.raises(QueryError) as info:
        check_headroom([component], total_rows=10**7, frac_bits=30)
    suggested_bits = int(str(info.value).split("lower frac_bits to ")[1].split(",")[0])
    check_headroom([component], total_rows=10**7, frac_bits=suggested_bits)
    with pytest.raises(QueryError):
        check_headroom([component], total_rows=10**7, frac_bits=suggested_bits + 1)


def test_headroom_boundary_is_exact() -> None:
    # 2^31 rows of value 2^16 at f=16: 2^31 * 2^32 = 2^63, one past the signed range.
    with pytest.raises(QueryError):
        check_headroom([Component("c", 2.0**16)], total_rows=2**31, frac_bits=16)
    check_headroom([Component("c", 2.0**16)], total_rows=2**31 - 1, frac_bits=16)


def test_frac_bits_range() -> None:
    with pytest.raises(QueryError, match="frac_bits"):
        encode([1.0], 60)


@pytest.mark.parametrize("frac_bits", [0, 1, 16, 24, 40, 48])
def test_scaling_by_multiplication_is_bit_for_bit_ldexp(frac_bits: int) -> None:
    """Encoding and decoding multiply by 2^±f (fast) instead of calling np.ldexp (slow): the
    same bits for every input, extremes, subnormals, NaN and infinities included."""
    rng = np.random.default_rng(frac_bits)
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1.7e308, -1.7e308]
    values = np.concatenate(
        [rng.normal(size=5000) * 10.0 ** rng.integers(-300, 300, 5000), specials, [2.5, -3.5]]
    )
    with np.errstate(all="ignore"):
        reference = np.rint(np.ldexp(np.nan_to_num(values, nan=0.0), frac_bits))
        reference = np.clip(reference, -ring._SATURATION, ring._SATURATION)
    expected = reference.astype(np.int64).view(np.uint64)
    np.testing.assert_array_equal(ring.encode_saturating(values, frac_bits), expected)
    grid = values[:5000].reshape(50, 100)  # any shape, and the in-place form
    np.testing.assert_array_equal(
        ring.encode_saturating_in_place(grid.copy(), frac_bits), expected[:5000].reshape(50, 100)
    )
    for scalar, word in zip(values[-12:], expected[-12:], strict=True):  # 0-d in, 0-d out
        assert ring.encode_saturating(scalar, frac_bits) == word
        assert ring.encode_saturating(np.float64(scalar), frac_bits).shape == ()
    finite = values[np.isfinite(values) & (np.abs(values) < 2.0 ** (62 - frac_bits))]
    exact = np.rint(np.ldexp(finite, frac_bits)).astype(np.int64).view(np.uint64)
    np.testing.assert_array_equal(ring.encode(finite, frac_bits), exact)
    words = rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64).view(np.uint64)
    decoded = np.ldexp(words.view(np.int64).astype(np.float64), -frac_bits)
    np.testing.assert_array_equal(ring.decode(words, frac_bits), decoded)


def test_saturate_maps_nan_and_infinities_to_the_ends_like_nan_to_num_and_clip() -> None:
    rng = np.random.default_rng(11)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324])
    values = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-5, 5, 2000), specials])
    for lo, hi in [(-1.0, 1.0), (0.0, np.inf), (-3.5, 2.25), (-1e150, 1e150)]:
        reference = np.clip(np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo), lo, hi)
        got = ring.saturate(values, lo, hi)
        np.testing.assert_array_equal(got, reference)
        assert got.dtype == np.float64 and got.shape == values.shape
        grid = ring.saturate(values[:2004].reshape(4, 501), lo, hi)  # any shape
        np.testing.assert_array_equal(grid.ravel(), reference[:2004])
        for v in specials:  # scalars in, 0-d out
            one = ring.saturate(v, lo, hi)
            assert one.shape == () and one == np.clip(
                np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo), lo, hi
            )
