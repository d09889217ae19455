"""Exact samplers for the discrete Gaussian and the discrete Laplace distributions.

Algorithms are those of Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential
Privacy" (CKS): Algorithm 1 draws Bernoulli(exp(-gamma)) for a rational gamma, Algorithm 2 the
discrete Laplace ``P[x] ∝ exp(-|x|/t)`` via a geometric, Algorithm 3 the discrete Gaussian
``N_Z(0, sigma^2)``, ``P[x] ∝ exp(-x^2 / (2 sigma^2))``, by rejection from a discrete Laplace.

Privacy argument. The mechanisms (:mod:`mpc.dp.mechanisms`) add one of these integers to an
integer fixed-point statistic. Their guarantees (rho = D^2/(2 sigma^2) zCDP for the discrete
Gaussian, epsilon = D/t for the discrete Laplace) hold for the *exact* distributions, so every
sampling decision here is exact: parameters are rationals, every comparison is between integers,
and no float is ever used to decide anything. A sample is therefore distributed exactly as
stated, given an ideal source of random bits.

Security assumptions.

* Randomness comes only from the OS CSPRNG (``secrets`` for the scalar code, :mod:`os.urandom`
  through :mod:`mpc.dp._csprng` for the vectorised code), assumed indistinguishable from
  uniform. ``random`` and ``numpy.random`` are never used (a guard test enforces this).
* Running time depends on the values drawn (the algorithms are rejection samplers). We assume an
  adversary cannot time a single sample: noise is drawn for a whole vector in one call before
  any share is sent, so only the total time of many independent lanes could be observed.

Two implementations of each sampler are provided. The ``*_scalar`` functions follow CKS
Algorithms 1-3 line by line with Python integers; they are the reference. The vectorised
functions run the same loops on numpy int64 arrays, many lanes at a time, with rejection masks.
Why they are still exact, and why int64 never overflows:

* Bernoulli(n/d) is ``[U < n]`` with ``U`` uniform on ``[0, d)``, drawn exactly by
  :func:`mpc.dp._csprng.bernoulli_below` (rejection sampling, no modulo bias; the bits of ``U``
  are drawn lazily, top byte first, which changes how many bytes are read, not ``U``'s law).
* In Algorithm 1's inner loop all live lanes are at the same iteration ``K``, so the bound
  ``d*K`` of the uniform draw is one Python integer for the whole batch. Every int64 quantity is
  kept below ``_LANE_LIMIT = 2**62`` by a guard checked *before* the arithmetic; a lane that
  would leave that range (astronomically rare for sane parameters) is finished by the scalar
  code with Python integers from exactly the state it had reached, which continues the same
  random process, so the output distribution is unchanged.
* Batches draw more candidates than needed and keep the first accepted ones. Accepted
  candidates are i.i.d. from the target, and which lanes accept is independent of the values
  the other lanes take, so a prefix of the accepted values is i.i.d. from the target.
* For the discrete Gaussian the vectorised code uses an equivalent form of Algorithm 3 whose
  numbers stay small; see :func:`_gaussian_plan`.
* The only floats are the estimated acceptance rates that size the next batch; they decide how
  many independent trials run, never what a trial outputs.

If the parameters themselves are too large for int64 (e.g. ``sigma_sq`` with a 60-bit
numerator) the vectorised functions fall back to the scalar reference, which is exact but slow;
:func:`sampler_friendly_sigma_sq` rounds a variance *up* (more noise, never less privacy) onto a
grid that keeps the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd, isqrt

import numpy as np
from numpy.typing import NDArray

from mpc.dp import _csprng
from mpc.dp._validate import RationalLike, count, positive_exact
from mpc.dp.distributions import (
    discrete_gaussian_pmf,
    discrete_gaussian_variance,
    discrete_laplace_pmf,
    discrete_laplace_variance,
)
from mpc.dp.scalar_samplers import (
    _bernoulli_exp_neg,
    _bernoulli_exp_neg_unit,
    _discrete_laplace_scalar,
    sample_bernoulli_exp,
    sample_discrete_gaussian_scalar,
    sample_discrete_laplace_scalar,
    sampler_friendly_scale,
    sampler_friendly_sigma_sq,
)

Int64Array = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_LANE_LIMIT = 1 << 62
"""Every int64 intermediate of the vectorised code stays below this (so a sum of two fits).

Tests lower it to force the exact scalar fallbacks to run often.
"""

_OUTPUT_LIMIT = 1 << 62
"""Samples must have magnitude below this to be returned in an int64 array.

A discrete Laplace sample of scale t exceeds it with probability about exp(-2**62 / t); for any
scale below 2**40 that is below 2**-(4 * 10**6). We raise rather than return a wrong value.
"""


# --------------------------------------------------------------------------------------------
# Vectorised: the same algorithms over many lanes of int64, with exact scalar fallbacks.
# --------------------------------------------------------------------------------------------


def _bernoulli_exp_neg_unit_vec(numerators: Int64Array, denominator: int) -> BoolArray:
    """Lane i: Bernoulli(exp(-numerators[i]/denominator)); needs 0 <= numerators <= denominator.

    CKS Algorithm 1's K loop in lockstep: at iteration K every live lane draws Bernoulli(gamma/K)
    as ``[uniform below denominator*K  <  numerator]`` and stops on a 0; a lane that stopped at K
    returns ``K is odd``.
    """
    # A lane's result is the parity of the K at which it stops; every live lane is provisionally
    # given the parity of the current K, and lanes that go on are overwritten next round.
    result = np.ones(numerators.size, dtype=np.bool_)
    lanes: NDArray[np.intp] | None = None  # None: all lanes (first round, no gather needed)
    nums = numerators
    k = 1
    while nums.size:
        bound = denominator * k
        if bound > _LANE_LIMIT:
            # Only reached after ~log2(limit/denominator) rounds of a loop that continues with
            # probability <= 1/K each round; finish those lanes exactly with Python ints.
            live = np.arange(nums.size) if lanes is None else lanes
            for lane, num in zip(live.tolist(), nums.tolist(), strict=True):
                result[lane] = _bernoulli_exp_neg_unit(num, denominator, k)
            break
        sel = np.flatnonzero(_csprng.bernoulli_below(nums, bound))
        lanes = sel if lanes is None else lanes[sel]
        nums = nums[sel]
        k += 1
        result[lanes] = k % 2 == 1
    return result


def _bernoulli_exp_neg_one_vec(size: int) -> BoolArray:
    """``size`` independent Bernoulli(exp(-1)) draws."""
    return _bernoulli_exp_neg_unit_vec(np.ones(size, dtype=np.int64), 1)


def _bernoulli_exp_neg_vec(numerators: Int64Array, denominator: int) -> BoolArray:
    """Lane i: Bernoulli(exp(-numerators[i]/denominator)) for numerators >= 0 (CKS Algorithm 1).

    exp(-gamma) = exp(-1)^floor(gamma) * exp(-frac(gamma)): a lane succeeds iff floor(gamma)
    independent Bernoulli(exp(-1)) draws and one Bernoulli(exp(-frac(gamma))) all succeed.
    """
    whole = numerators // denominator
    rem = numerators - whole * denominator
    result = np.ones(numerators.size, dtype=np.bool_)
    lanes = np.flatnonzero(whole)
    left = whole[lanes]
    while lanes.size:
        ok = _bernoulli_exp_neg_one_vec(lanes.size)
        result[lanes[~ok]] = False
        more = ok & (left > 1)
        lanes, left = lanes[more], left[more] - 1
    alive = np.flatnonzero(result)
    result[alive] = _bernoulli_exp_neg_unit_vec(rem[alive], denominator)
    return result


def _geometric_vec(size: int) -> Int64Array:
    """Lane i: the number of successes of Bernoulli(exp(-1)) before the first failure."""
    v = np.zeros(size, dtype=np.int64)
    lanes = np.arange(size)
    while lanes.size:
        lanes = lanes[_bernoulli_exp_neg_one_vec(lanes.size)]
        v[lanes] += 1
    return v


_MIN_RATE = 0.01


def _batch_size(need: int, rate: float) -> int:
    """Trials to run for ``need`` accepted samples when a fraction ``rate`` is accepted.

    Only sizes the batch (a float is fine: it decides no sample); a short batch costs one more
    round, a long one wastes randomness.
    """
    return int(need / rate * 1.02) + 32


def _check_output(value: int) -> int:
    if abs(value) >= _OUTPUT_LIMIT:
        # Probability below 2**-(10**6) for supported scales; never silently clip.
        raise OverflowError("a noise sample does not fit in int64; the noise scale is too large")
    return value


def _discrete_laplace_vec(t: int, s: int, size: int) -> Int64Array:
    """``size`` draws of the discrete Laplace of scale t/s (CKS Algorithm 2), t < _LANE_LIMIT."""
    out = np.empty(size, dtype=np.int64)
    filled = 0
    # u + t*v stays below the limit while v <= v_cap; larger v (probability ~exp(-v_cap)) is
    # finished with Python ints.
    v_cap = (_LANE_LIMIT - t) // t
    rate = 0.6  # guess of the fraction of trials that yield a sample; refined below
    while filled < size:
        need = size - filled
        trials = _batch_size(need, rate)
        u = _csprng.uniform_below(t, trials)
        u = u[_bernoulli_exp_neg_unit_vec(u, t)]
        v = _geometric_vec(u.size)
        big = v > v_cap
        y = (u + t * np.where(big, 0, v)) // s
        for lane in np.flatnonzero(big).tolist():
            y[lane] = _check_output((int(u[lane]) + t * int(v[lane])) // s)
        negative = _csprng.random_bits(u.size)
        keep = ~(negative & (y == 0))  # reject "-0" so that 0 is not counted twice
        y = np.where(negative, -y, y)[keep]
        rate = max(y.size / trials, _MIN_RATE)
        y = y[:need]
        out[filled : filled + y.size] = y
        filled += y.size
    return out


@dataclass(frozen=True, slots=True)
class _GaussianPlan:
    """Integers for the vectorised discrete Gaussian (see :func:`_gaussian_plan`)."""

    p: int  # sigma^2 = p / q, in lowest terms
    q: int
    c_num: int  # centre c = c_num / c_den > sigma
    c_den: int
    lap_t: int  # proposal: discrete Laplace of scale lap_t / lap_s = sigma^2 / c
    lap_s: int
    acc_den: int  # acceptance exponent = q * (c_den*|y| - c_num)^2 / acc_den
    y_cap: int  # lanes with |y| <= y_cap compute the exponent in int64 (others: Python ints)


def _gaussian_plan(sigma_sq: Fraction) -> _GaussianPlan | None:
    """Parameters of the vectorised discrete Gaussian, or None if they do not fit int64.

    CKS Algorithm 3 proposes Y from the discrete Laplace of scale t and accepts with probability
    exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)). Expanding the square shows that the accepted Y has
    ``P[y] ∝ exp(-|y|/t) * exp(-(|y| - sigma^2/t)^2/(2 sigma^2)) ∝ exp(-y^2/(2 sigma^2))`` for
    *every* t > 0; the choice of t only changes the acceptance rate. CKS take t = floor(sigma)+1,
    which makes sigma^2/t a fraction with a large denominator, so the exponent's numerator
    (q t |y| - p)^2 needs ~2 * 80 bits for sigma ~ 2**20. We instead fix the centre
    c = sigma^2/t to a small rational just above sigma (an integer when sigma >= 8; a multiple of
    1/16 below, so that c/sigma stays below 1.125 and the acceptance rate near its optimum) and
    let t = sigma^2 / c. The exponent becomes q (c_den |y| - c_num)^2 /
    (2 p c_den^2): its numerator is q times a square of an integer of the size of |y|, which fits
    in int64 whenever p < 2**55 or so, for all |y| up to many sigmas. The acceptance rate stays
    that of CKS (c ~ sigma maximises it). The Laplace proposal has the rational scale
    p c_den / (q c_num), drawn exactly by Algorithm 2.
    """
    p, q = sigma_sq.numerator, sigma_sq.denominator
    c_den = 1 if p >= 64 * q else 16
    c_num = isqrt(p * c_den * c_den // q) + 1  # c = c_num/c_den > sigma, within 1/c_den
    g = gcd(p * c_den, q * c_num)
    lap_t, lap_s = p * c_den // g, q * c_num // g
    acc_den = 2 * p * c_den * c_den
    if max(lap_t, lap_s, acc_den) >= _LANE_LIMIT:
        return None
    a_cap = isqrt((_LANE_LIMIT - 1) // q)  # q * a^2 < limit for |a| <= a_cap
    y_cap = (a_cap + c_num) // c_den if c_num <= a_cap else -1
    return _GaussianPlan(p, q, c_num, c_den, lap_t, lap_s, acc_den, y_cap)


def _discrete_gaussian_vec(plan: _GaussianPlan, size: int) -> Int64Array:
    out = np.empty(size, dtype=np.int64)
    filled = 0
    rate = 0.75  # CKS: ~76% of candidates are accepted for large sigma; refined below
    while filled < size:
        need = size - filled
        trials = _batch_size(need, rate)
        y = _discrete_laplace_vec(plan.lap_t, plan.lap_s, trials)
        magnitude = np.abs(y)
        accept = np.empty(trials, dtype=np.bool_)
        small = magnitude <= plan.y_cap
        lanes = np.flatnonzero(small)
        if lanes.size:
            # |a| <= a_cap, so q*|a| <= sqrt(q * limit) and q*a*a < limit: no overflow.
            a = magnitude[lanes] * plan.c_den - plan.c_num
            accept[lanes] = _bernoulli_exp_neg_vec(plan.q * a * a, plan.acc_den)
        for lane in np.flatnonzero(~small).tolist():
            a_big = int(magnitude[lane]) * plan.c_den - plan.c_num
            accept[lane] = _bernoulli_exp_neg(plan.q * a_big * a_big, plan.acc_den)
        got = y[accept]
        rate = max(got.size / trials, _MIN_RATE)
        got = got[:need]
        out[filled : filled + got.size] = got
        filled += got.size
    return out


def sample_discrete_gaussian(sigma_sq: RationalLike, size: int) -> Int64Array:
    """``size`` i.i.d. exact draws from ``N_Z(0, sigma_sq)`` as an int64 array.

    ``sigma_sq`` is an int or Fraction (never a float). About 0.3-0.5 s per 10**6 draws on one
    core when the numerator of ``sigma_sq`` is below ~2**55 (:func:`sampler_friendly_sigma_sq`
    guarantees it); otherwise the exact scalar reference is used, which is ~50x slower.
    """
    var = positive_exact(sigma_sq, "sigma_sq")
    n = count(size, "size")
    plan = _gaussian_plan(var)
    if plan is None:
        return np.fromiter(
            (_check_output(sample_discrete_gaussian_scalar(var)) for _ in range(n)),
            dtype=np.int64,
            count=n,
        )
    return _discrete_gaussian_vec(plan, n)


def sample_discrete_laplace(scale: RationalLike, size: int) -> Int64Array:
    """``size`` i.i.d. exact draws from the discrete Laplace ``P[x] ∝ exp(-|x|/scale)``."""
    t = positive_exact(scale, "scale")
    n = count(size, "size")
    if max(t.numerator, t.denominator) >= _LANE_LIMIT:
        return np.fromiter(
            (_check_output(_discrete_laplace_scalar(t.numerator, t.denominator)) for _ in range(n)),
            dtype=np.int64,
            count=n,
        )
    return _discrete_laplace_vec(t.numerator, t.denominator, n)


__all__ = [
    "discrete_gaussian_pmf",
    "discrete_gaussian_variance",
    "discrete_laplace_pmf",
    "discrete_laplace_variance",
    "sample_bernoulli_exp",
    "sample_discrete_gaussian",
    "sample_discrete_gaussian_scalar",
    "sample_discrete_laplace",
    "sample_discrete_laplace_scalar",
    "sampler_friendly_scale",
    "sampler_friendly_sigma_sq",
]
