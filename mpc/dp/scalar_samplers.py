"""The scalar reference samplers (CKS Algorithms 1-3 with Python integers and ``secrets``)
and the rounding of parameters onto the vectorised samplers' fast path.

Split from :mod:`mpc.dp.samplers` (which re-exports every name here and states the privacy
argument and security assumptions): every decision is exact, on integers, and the only
randomness is ``secrets`` (the OS CSPRNG).
"""

from __future__ import annotations

import secrets
from fractions import Fraction
from math import isqrt

from mpc.dp._validate import RationalLike, exact, positive_exact
from mpc.errors import ConfigError

_FRIENDLY_NUMERATOR_BITS = 40
""":func:`sampler_friendly_sigma_sq` keeps numerators below 2**40 (see :func:`_gaussian_plan`)."""


# --------------------------------------------------------------------------------------------
# Scalar reference: CKS Algorithms 1-3 with Python integers and ``secrets``.
# --------------------------------------------------------------------------------------------


def _bernoulli(numerator: int, denominator: int) -> bool:
    """Bernoulli(numerator/denominator), for 0 <= numerator <= denominator."""
    return secrets.randbelow(denominator) < numerator


def _bernoulli_exp_neg_unit(numerator: int, denominator: int, k: int = 1) -> bool:
    """CKS Algorithm 1 for gamma = numerator/denominator in [0, 1], starting the loop at K = k.

    ``k > 1`` continues a loop that a vectorised lane left at iteration ``k``.
    """
    while _bernoulli(numerator, denominator * k):
        k += 1
    return k % 2 == 1


def _bernoulli_exp_neg(numerator: int, denominator: int) -> bool:
    """CKS Algorithm 1: Bernoulli(exp(-numerator/denominator)) for any rational >= 0."""
    whole, rem = divmod(numerator, denominator)
    for _ in range(whole):
        if not _bernoulli_exp_neg_unit(1, 1):
            return False
    return _bernoulli_exp_neg_unit(rem, denominator)


def sample_bernoulli_exp(gamma: RationalLike) -> bool:
    """Return True with probability exactly exp(-gamma), for a rational gamma >= 0."""
    g = exact(gamma, "gamma")
    if g < 0:
        raise ConfigError(f"gamma must be >= 0, got {g}")
    return _bernoulli_exp_neg(g.numerator, g.denominator)


def _discrete_laplace_scalar(t: int, s: int) -> int:
    """CKS Algorithm 2: one draw from the discrete Laplace of scale t/s (t, s positive ints)."""
    while True:
        u = secrets.randbelow(t)
        if not _bernoulli_exp_neg_unit(u, t):
            continue
        v = 0
        while _bernoulli_exp_neg_unit(1, 1):
            v += 1
        y = (u + t * v) // s
        if secrets.randbelow(2) == 1:
            if y == 0:
                continue  # reject -0 so that 0 is not counted twice
            return -y
        return y


def sample_discrete_laplace_scalar(scale: RationalLike) -> int:
    """One exact draw from the discrete Laplace ``P[x] ∝ exp(-|x|/scale)`` (CKS Algorithm 2)."""
    t = positive_exact(scale, "scale")
    return _discrete_laplace_scalar(t.numerator, t.denominator)


def sample_discrete_gaussian_scalar(sigma_sq: RationalLike) -> int:
    """One exact draw from ``N_Z(0, sigma_sq)`` (CKS Algorithm 3, verbatim)."""
    var = positive_exact(sigma_sq, "sigma_sq")
    p, q = var.numerator, var.denominator
    t = isqrt(p // q) + 1  # floor(sigma) + 1, computed exactly: floor(sqrt(x)) = isqrt(floor(x))
    while True:
        y = _discrete_laplace_scalar(t, 1)
        # gamma = (|y| - sigma^2/t)^2 / (2 sigma^2) = (q t |y| - p)^2 / (2 p q t^2), exactly.
        a = q * t * abs(y) - p
        if _bernoulli_exp_neg(a * a, 2 * p * q * t * t):
            return y


def _round_up_dyadic(value: Fraction) -> Fraction:
    """The smallest multiple of 2**-k that is >= value, k chosen for a numerator below 2**40."""
    whole_bits = (value.numerator // value.denominator).bit_length()
    k = max(0, _FRIENDLY_NUMERATOR_BITS - 1 - whole_bits)
    scaled = -((-value.numerator << k) // value.denominator)  # ceil(value * 2**k)
    return Fraction(scaled, 1 << k)


def sampler_friendly_sigma_sq(sigma_sq: RationalLike) -> Fraction:
    """The smallest ``v >= sigma_sq`` on a dyadic grid that keeps the vectorised fast path.

    ``v`` is a multiple of ``2**-k`` with ``k`` chosen so that v's numerator has at most 40 bits
    (``k = 0`` for variances of 2**40 or more: then v is an integer). Rounding the variance up
    adds noise, so the privacy guarantee computed from ``v`` only improves; the relative change
    is below 2**-39 whenever ``sigma_sq >= 1``.
    """
    return _round_up_dyadic(positive_exact(sigma_sq, "sigma_sq"))


def sampler_friendly_scale(scale: RationalLike) -> Fraction:
    """Like :func:`sampler_friendly_sigma_sq`, for a discrete Laplace scale (rounded up)."""
    return _round_up_dyadic(positive_exact(scale, "scale"))
