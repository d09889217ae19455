"""Sensitivities, noise sizing, budget splits, post-processing and error bars for releases.

Everything is in the integer fixed-point domain: a real value ``x`` is encoded as an integer near
``x * 2**frac_bits``, statistics are sums of encoded values, and the noise is an integer added to
them. A sensitivity here is therefore an integer: ``ceil(sensitivity * 2**frac_bits)``.

Privacy argument and the contract it relies on. Neighbouring datasets differ by one record
(added or removed). A sensitivity below is a bound on the L2 norm of one record's encoded
contribution, and is valid only if the *encoded* contribution obeys it. Bounds and clip norms are
declared in the job, never read from the data. The caller must therefore clamp or clip *after*
encoding, against the integer bounds returned by :func:`fixed_point_bound` /
:func:`vector_norm_bound` (for scalars, clamping x to [L, U] before a monotone rounding also
works; for vectors it does not, because rounding each coordinate can grow the norm by up to
``sqrt(dim)/2``: pass ``dim`` to include that slack when clipping happens before encoding).

Error bars use the sub-Gaussian tail of the discrete Gaussian: ``E[exp(lambda Z)] <=
exp(lambda^2 sigma^2 / 2)`` for ``Z ~ N_Z(0, sigma^2)`` (Canonne, Kamath, Steinke 2020, Cor. 9),
so ``P(|Z| > t) <= 2 exp(-t^2 / (2 sigma^2))``; a sum of independent such noises is
sub-Gaussian with the summed variance proxy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from math import isqrt

from mpc.dp._validate import RationalLike, RealLike, count, exact, positive_exact, real
from mpc.dp.accountant import rho_discrete_gaussian_sq, sigma_sq_for_rho
from mpc.dp.samplers import sampler_friendly_sigma_sq
from mpc.errors import ConfigError

# ---------------------------------------------------------------------------- sensitivities


def _scale_up(value: Fraction, frac_bits: int) -> int:
    """``ceil(value * 2**frac_bits)`` for value >= 0."""
    bits = count(frac_bits, "frac_bits")
    return -((-value.numerator << bits) // value.denominator)


def _bounds(lower: RationalLike, upper: RationalLike) -> tuple[Fraction, Fraction]:
    lo, hi = exact(lower, "lower"), exact(upper, "upper")
    if lo > hi:
        raise ConfigError(f"lower bound {lo} is above upper bound {hi}")
    return lo, hi


def fixed_point_bound(value: RationalLike, frac_bits: int) -> int:
    """``ceil(|value| * 2**frac_bits)``: the integer bound to clamp encoded values against."""
    return _scale_up(abs(exact(value, "value")), frac_bits)


def count_sensitivity(frac_bits: int = 0) -> int:
    """A count changes by 1 when one record is added or removed."""
    return _scale_up(Fraction(1), frac_bits)


def histogram_sensitivity(frac_bits: int = 0) -> int:
    """L2 sensitivity of a histogram: one record adds or removes 1 in exactly one bin."""
    return _scale_up(Fraction(1), frac_bits)


def sum_sensitivity(lower: RationalLike, upper: RationalLike, frac_bits: int) -> int:
    """Sum of values clamped to [L, U]: one record moves it by at most ``max(|L|, |U|)``."""
    lo, hi = _bounds(lower, upper)
    return _scale_up(max(abs(lo), abs(hi)), frac_bits)


def centred_sum_sensitivity(lower: RationalLike, upper: RationalLike, frac_bits: int) -> int:
    """Sum of ``x - m`` with ``m = (L+U)/2`` and x in [L, U]: at most ``(U - L)/2`` per record."""
    lo, hi = _bounds(lower, upper)
    return _scale_up((hi - lo) / 2, frac_bits)


def vector_norm_bound(clip_norm: RationalLike, frac_bits: int, *, dim: int | None = None) -> int:
    """Integer L2-norm bound of one encoded, clipped vector.

    ``ceil(C * 2**frac_bits)`` if vectors are clipped after encoding (``dim=None``); with
    ``dim`` given, vectors clipped to norm C *before* coordinate-wise rounding, whose norm can
    grow by ``sqrt(dim)/2``: ``ceil(C * 2**frac_bits + sqrt(dim)/2)`` (sqrt bounded above
    exactly with integers).
    """
    c = exact(clip_norm, "clip_norm")
    if c < 0:
        raise ConfigError(f"clip_norm must be >= 0, got {c}")
    scaled = c * (1 << count(frac_bits, "frac_bits"))
    if dim is not None:
        d = count(dim, "dim", minimum=1)
        root_up = isqrt(d - 1) + 1  # >= sqrt(d)
        scaled += Fraction(root_up, 2)
    return -((-scaled.numerator) // scaled.denominator)


def clipped_sum_sensitivity(
    clip_norm: RationalLike, frac_bits: int, *, dim: int | None = None
) -> int:
    """Sum of per-record vectors clipped to L2 norm C: one record moves it by at most C."""
    return vector_norm_bound(clip_norm, frac_bits, dim=dim)


def gram_sensitivity(bound_x: RationalLike, frac_bits: int, *, dim: int | None = None) -> int:
    """Upper triangle of ``X^T X`` with rows of norm <= B_X: at most ``B_X^2`` per record.

    One record adds ``x x^T``, whose Frobenius norm is ``|x|^2``; the upper triangle is part of
    it. Computed from the encoded norm bound, so the result lives in the product domain
    (``2 * frac_bits`` fractional bits) of integer products ``x_int x_int^T``.
    """
    b = vector_norm_bound(bound_x, frac_bits, dim=dim)
    return b * b


def cross_sensitivity(
    bound_x: RationalLike, bound_y: RationalLike, frac_bits: int, *, dim: int | None = None
) -> int:
    """``X^T y`` with rows of norm <= B_X and |y| <= B_Y: at most ``B_X * B_Y`` per record.

    In the product domain (``2 * frac_bits`` fractional bits), like :func:`gram_sensitivity`.
    """
    return vector_norm_bound(bound_x, frac_bits, dim=dim) * fixed_point_bound(bound_y, frac_bits)


# ------------------------------------------------------------------------- distributed noise


def honest_noise_shares(n_live: int, colluders: int) -> int:
    """``n_live - colluders``: how many noise shares the adversary does not know."""
    n = count(n_live, "n_live", minimum=1)
    t = count(colluders, "colluders")
    if n - t < 1:
        raise ConfigError(
            f"distributed noise needs at least one party outside the colluding set, but "
            f"n_live={n} and colluders={t}; add parties or declare fewer colluders"
        )
    return n - t


def distributed_sigma_sq(sigma_sq: RationalLike, n_live: int, colluders: int) -> Fraction:
    """Per-party variance ``sigma^2 / (n_live - t)``, rounded up onto the sampler grid.

    Each live party adds ``N_Z(0, sigma_p^2)``; the ``n_live - t`` shares the adversary does not
    know sum to variance ``>= sigma^2``-ish (their sum is close to ``N_Z(0, sigma^2)``; charge it
    with :func:`mpc.dp.accountant.rho_distributed_discrete_gaussian`). Each party computes this
    from the signed job spec and roster, never from a number the coordinator supplies.
    """
    var = positive_exact(sigma_sq, "sigma_sq")
    return sampler_friendly_sigma_sq(var / honest_noise_shares(n_live, colluders))


def distributed_total_sigma_sq(sigma_p_sq: RationalLike, n_live: int) -> Fraction:
    """Variance proxy of all the noise in a distributed release: ``n_live * sigma_p^2``.

    Every live party's share is in the output (colluders' too), so error bars use all of them.
    """
    return positive_exact(sigma_p_sq, "sigma_p_sq") * count(n_live, "n_live", minimum=1)


# ------------------------------------------------------------------------------- the mean


@dataclass(frozen=True, slots=True)
class MeanNoise:
    """Noise for a DP mean ``m + (sum(x - m) + Z_S) / max(1, n + Z_N)``."""

    sum_sigma_sq: Fraction
    """Variance of Z_S (fixed-point domain)."""
    count_sigma_sq: Fraction
    """Variance of Z_N (counts are plain integers)."""
    sum_sensitivity: int
    rho: Fraction
    """Exact total zCDP cost of both releases (at most the budgeted rho)."""


def split_mean_budget(
    rho: RationalLike, count_share: RationalLike = Fraction(1, 2)
) -> tuple[Fraction, Fraction]:
    """Split a zCDP budget into ``(rho_sum, rho_count)``; they add up to ``rho`` exactly.

    Why an even split by default: the estimator's error is about
    ``Z_S/n - (S/n) Z_N / n`` with ``|S/n| <= (U-L)/2 = h``. With ``sigma_S^2 = h^2/(2 rho_S)``
    (in data units) and ``sigma_N^2 = 1/(2 rho_N)``, the worst-case variance is
    ``h^2/(2 n^2) (1/rho_S + 1/rho_N)``, minimised over ``rho_S + rho_N = rho`` at
    ``rho_S = rho_N``. When the mean is expected near the midpoint the count matters less and a
    smaller ``count_share`` helps.
    """
    total = positive_exact(rho, "rho")
    share = exact(count_share, "count_share")
    if not 0 < share < 1:
        raise ConfigError(f"count_share must be strictly between 0 and 1, got {share}")
    rho_count = total * share
    return total - rho_count, rho_count


def calibrate_mean(
    rho: RationalLike,
    lower: RationalLike,
    upper: RationalLike,
    frac_bits: int,
    count_share: RationalLike = Fraction(1, 2),
) -> MeanNoise:
    """Noise variances for the centred sum and the count of a mean, within a zCDP budget."""
    rho_sum, rho_count = split_mean_budget(rho, count_share)
    sensitivity = centred_sum_sensitivity(lower, upper, frac_bits)
    if sensitivity == 0:
        raise ConfigError("lower and upper bounds are equal: the mean needs no query")
    sum_var = sigma_sq_for_rho(sensitivity, rho_sum)
    count_var = sigma_sq_for_rho(count_sensitivity(), rho_count)
    cost = rho_discrete_gaussian_sq(sensitivity, sum_var) + rho_discrete_gaussian_sq(
        count_sensitivity(), count_var
    )
    return MeanNoise(sum_var, count_var, sensitivity, cost)


def noisy_mean(
    noisy_centred_sum: RationalLike,
    noisy_count: int,
    lower: RationalLike,
    upper: RationalLike,
) -> Fraction:
    """``m + noisy_centred_sum / max(1, noisy_count)``, clamped to [L, U]; exact post-processing.

    ``noisy_centred_sum`` is ``sum(x - m) + Z_S`` decoded to data units (e.g.
    ``Fraction(value_int, 2**frac_bits)``); ``noisy_count`` is ``n + Z_N``. Being a function of
    released values only, it costs no privacy.
    """
    lo, hi = _bounds(lower, upper)
    s = exact(noisy_centred_sum, "noisy_centred_sum")
    if isinstance(noisy_count, bool) or not isinstance(noisy_count, int):
        raise TypeError(f"noisy_count must be an int, not {type(noisy_count).__name__}")
    estimate = (lo + hi) / 2 + s / max(1, noisy_count)
    return min(hi, max(lo, estimate))


# ------------------------------------------------------------------------------ error bars


def error_bound(sigma_sq: RationalLike, confidence: RealLike = Fraction(95, 100)) -> float:
    """``t`` with ``P(|Z| > t) <= 1 - confidence`` for discrete Gaussian noise of variance
    parameter ``sigma_sq`` (or any sub-Gaussian noise with that variance proxy).

    ``t = sigma * sqrt(2 ln(2 / (1 - confidence)))`` from the tail bound in the module
    docstring (2.72 sigma at 95%), rounded up; in the units of the noise (divide by
    ``2**frac_bits`` for data units).
    """
    var = positive_exact(sigma_sq, "sigma_sq")
    c = real(confidence, "confidence")
    if not 0 < c < 1:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {float(c)}")
    t = math.sqrt(2.0 * float(var) * math.log(2.0 / float(1 - c)))
    return t * (1 + 1e-12)
