"""Privacy costs of the mechanisms, zCDP <-> (epsilon, delta) conversion, and calibration.

Split from :mod:`mpc.dp.accountant` (which re-exports every name here); the privacy argument
for each function is in that module's docstring. Ledger units are defined here, the ledger
arithmetic (:class:`~mpc.dp.accountant.PrivacyCost`, :class:`~mpc.dp.accountant.Budget`) there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from mpc.dp._floats import round_up
from mpc.dp._validate import RationalLike, RealLike, count, exact, positive_exact, real
from mpc.dp.samplers import sampler_friendly_scale, sampler_friendly_sigma_sq
from mpc.errors import ConfigError

UNITS_PER_ONE = 10**12
"""Ledger quantities (rho, RDP values, epsilon) are integers in units of 1 / UNITS_PER_ONE."""

_BISECTION_STEPS = 200
_MAX_RHO_UNITS = 1 << 120


def units_up(value: RationalLike) -> int:
    """``ceil(value * UNITS_PER_ONE)``: how a cost is stored."""
    x = Fraction(value)
    return -((-x.numerator * UNITS_PER_ONE) // x.denominator)


def units_down(value: RationalLike) -> int:
    """``floor(value * UNITS_PER_ONE)``: how a budget is stored."""
    x = Fraction(value)
    return (x.numerator * UNITS_PER_ONE) // x.denominator


def _grid_up(value: float) -> Fraction:
    """A float that is already rounded up, as a Fraction on the unit grid (ceil)."""
    return Fraction(units_up(Fraction(value)), UNITS_PER_ONE)


# ------------------------------------------------------------------------- mechanism costs


def rho_discrete_gaussian(sensitivity: RationalLike, sigma: RationalLike) -> Fraction:
    """zCDP rho of ``N_Z(0, sigma^2)`` noise at L2 sensitivity D: ``D^2 / (2 sigma^2)``."""
    return rho_discrete_gaussian_sq(sensitivity, positive_exact(sigma, "sigma") ** 2)


def rho_discrete_gaussian_sq(sensitivity: RationalLike, sigma_sq: RationalLike) -> Fraction:
    """zCDP rho of ``N_Z(0, sigma_sq)`` noise at L2 sensitivity D: ``D^2 / (2 sigma_sq)``."""
    d = exact(sensitivity, "sensitivity")
    if d < 0:
        raise ConfigError(f"sensitivity must be >= 0, got {d}")
    return d * d / (2 * positive_exact(sigma_sq, "sigma_sq"))


def epsilon_discrete_laplace(sensitivity: RationalLike, scale: RationalLike) -> Fraction:
    """Pure epsilon of discrete Laplace noise of the given scale at L1 sensitivity D: ``D/t``."""
    d = exact(sensitivity, "sensitivity")
    if d < 0:
        raise ConfigError(f"sensitivity must be >= 0, got {d}")
    return d / positive_exact(scale, "scale")


def rho_from_pure_epsilon(epsilon: RationalLike) -> Fraction:
    """zCDP rho implied by pure epsilon-DP: ``epsilon^2 / 2`` (Bun-Steinke 2016, Prop. 1.4)."""
    e = exact(epsilon, "epsilon")
    if e < 0:
        raise ConfigError(f"epsilon must be >= 0, got {e}")
    return e * e / 2


def compose_rho(*rhos: RationalLike) -> Fraction:
    """zCDP composition: the rhos add up."""
    total = Fraction(0)
    for r in rhos:
        value = exact(r, "rho")
        if value < 0:
            raise ConfigError(f"rho must be >= 0, got {value}")
        total += value
    return total


def distributed_tau(sigma_p_sq: RationalLike, honest_parties: int) -> float:
    """KLS 2021's ``tau = 10 sum_{k=1}^{h-1} exp(-2 pi^2 sigma_p^2 k/(k+1))``, rounded up."""
    s = float(positive_exact(sigma_p_sq, "sigma_p_sq"))
    h = count(honest_parties, "honest_parties", minimum=1)
    tau = 10.0 * math.fsum(math.exp(-2.0 * math.pi**2 * s * k / (k + 1)) for k in range(1, h))
    return round_up(tau)


def rho_distributed_discrete_gaussian(
    l2_sensitivity: RationalLike,
    sigma_p_sq: RationalLike,
    honest_parties: int,
    *,
    l1_sensitivity: RationalLike | None = None,
    dim: int = 1,
) -> Fraction:
    """zCDP rho of the sum of ``honest_parties`` independent ``N_Z(0, sigma_p_sq)^dim`` noises.

    Kairouz-Liu-Steinke 2021 bound (module docstring); exact ``D^2/(2 sigma_p_sq)`` when one
    honest party adds all the noise that counts. The noise of colluding parties is treated as
    known to the adversary, so only ``honest_parties = n_live - colluders`` shares count.
    ``l1_sensitivity`` defaults to ``sqrt(dim) * l2_sensitivity`` (always valid). Rounded up.
    """
    d2 = exact(l2_sensitivity, "l2_sensitivity")
    if d2 < 0:
        raise ConfigError(f"l2_sensitivity must be >= 0, got {d2}")
    var = positive_exact(sigma_p_sq, "sigma_p_sq")
    h = count(honest_parties, "honest_parties", minimum=1)
    dims = count(dim, "dim", minimum=1)
    base = d2 * d2 / (2 * h * var)
    if h == 1 or d2 == 0:
        return base
    if var < Fraction(1, 4):
        raise ConfigError(
            "per-party noise sigma_p must be >= 1/2 for the distributed discrete Gaussian bound; "
            "use a larger total sigma or fewer noise shares"
        )
    d1 = math.sqrt(dims) * float(d2)
    if l1_sensitivity is not None:
        d1 = min(d1, float(exact(l1_sensitivity, "l1_sensitivity")))
    tau = distributed_tau(var, h)
    s = math.sqrt(h * float(var))
    extra = min(
        d1 * tau / s + tau * tau * dims / 2.0,
        float(d2) * math.sqrt(dims) * tau / s + tau * tau * dims / 2.0,
    )
    # The extra term is > 0 in exact arithmetic even when it underflows: charge >= 1 unit.
    extra_units = max(1, units_up(Fraction(round_up(extra))))
    return base + Fraction(extra_units, UNITS_PER_ONE)


# ------------------------------------------------------------ zCDP <-> (epsilon, delta)


def _check_delta(delta: RealLike) -> float:
    d = float(real(delta, "delta"))
    if not 0 < d < 1:
        raise ConfigError(f"delta must be in (0, 1), got {d}")
    return d


def _check_rho(rho: RationalLike) -> float:
    r = exact(rho, "rho")
    if r < 0:
        raise ConfigError(f"rho must be >= 0, got {r}")
    return float(r)


def _zcdp_epsilon(rho: float, delta: float) -> float:
    """min over a > 1 of ``a rho + log((a-1)/a) + (log(1/delta) - log a)/(a-1)``, rounded up.

    This is CKS Cor. 13 solved for epsilon. Its derivative in ``a`` has the sign of
    ``rho (a-1)^2 + log(a) - log(1/delta)``, increasing in ``a``: bisect for the root.
    """
    if rho == 0 or delta * delta > round_up(-math.expm1(-rho)):
        return 0.0  # TV <= sqrt(1 - exp(-KL)), KL <= rho: (0, delta)-DP
    log_inv_delta = -math.log(delta)
    lo, hi = 1.0, 2.0 + math.sqrt(log_inv_delta / rho)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if rho * (mid - 1.0) ** 2 + math.log(mid) < log_inv_delta:
            lo = mid
        else:
            hi = mid
    a = hi  # any a > 1 gives a valid bound
    # log((a-1)/a) as log(a-1) - log(a): a-1 is exact for a in [1, 2] and keeps precision.
    parts = (
        a * rho,
        math.log(a - 1.0),
        -math.log(a),
        log_inv_delta / (a - 1.0),
        -math.log(a) / (a - 1.0),
    )
    # A bound <= 0 means (0, delta)-DP: the true minimum is below the rounded-up value.
    return max(0.0, round_up(math.fsum(parts), sum(map(abs, parts))))


def epsilon_for_rho(rho: RationalLike, delta: RealLike) -> Fraction:
    """The epsilon of (epsilon, delta)-DP implied by rho-zCDP, rounded up to the unit grid."""
    return _grid_up(_zcdp_epsilon(_check_rho(rho), _check_delta(delta)))


def delta_for_rho(rho: RationalLike, epsilon: RealLike) -> float:
    """The delta of (epsilon, delta)-DP implied by rho-zCDP (CKS Cor. 13), rounded up."""
    r = _check_rho(rho)
    e = float(real(epsilon, "epsilon"))
    if e < 0:
        raise ConfigError(f"epsilon must be >= 0, got {e}")
    if r == 0:
        return 0.0
    # d/da of the log of the bound is (2a-1) rho - eps + log(1-1/a), increasing in a.
    lo, hi = 1.0, max(2.0, (e + 1.0) / (2.0 * r) + 1.0)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if (2.0 * mid - 1.0) * r - e + math.log(mid - 1.0) - math.log(mid) < 0:
            lo = mid
        else:
            hi = mid
    a = hi
    parts = (
        (a - 1.0) * a * r,
        -(a - 1.0) * e,
        a * math.log(a - 1.0),
        -a * math.log(a),
        -math.log(a - 1.0),
    )
    log_delta = round_up(math.fsum(parts), sum(map(abs, parts)))
    tv_bound = round_up(math.sqrt(-math.expm1(-r)))
    # exp underflows below ~1e-308; the true value is positive, so round up to the least float.
    return min(1.0, max(math.exp(log_delta), math.ulp(0.0)), tv_bound)


def rho_for_epsilon(epsilon: RealLike, delta: RealLike) -> Fraction:
    """The largest rho on the unit grid whose (rounded-up) epsilon at ``delta`` is <= epsilon.

    The calibration target: spend at most this much zCDP to stay within (epsilon, delta).
    """
    target = real(epsilon, "epsilon")
    if target <= 0:
        raise ConfigError(f"epsilon must be > 0, got {float(target)}")
    d = _check_delta(delta)

    def fits(units: int) -> bool:
        return epsilon_for_rho(Fraction(units, UNITS_PER_ONE), d) <= target

    if not fits(1):
        raise ConfigError(
            f"epsilon={float(target)} at delta={d} leaves no usable zCDP budget; raise epsilon"
        )
    lo, hi = 1, 2
    while fits(hi):  # exponential search for an upper end
        lo, hi = hi, hi * 2
        if hi > _MAX_RHO_UNITS:
            raise ConfigError("the (epsilon, delta) target is too large to calibrate")
    while hi - lo > 1:  # invariant: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return Fraction(lo, UNITS_PER_ONE)


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class GaussianCalibration:
    """Noise for a discrete Gaussian release and what it costs."""

    sigma_sq: Fraction
    """Variance to pass to the sampler (already on the sampler-friendly grid)."""
    rho: Fraction
    """The exact zCDP cost ``D^2 / (2 sigma_sq)``; never above the budgeted rho."""

    @property
    def sigma(self) -> float:
        """Approximate standard deviation, for display only."""
        return math.sqrt(self.sigma_sq)


def sigma_sq_for_rho(sensitivity: RationalLike, rho: RationalLike) -> Fraction:
    """The variance for a rho-zCDP discrete Gaussian at L2 sensitivity D, rounded up.

    ``D^2 / (2 rho)`` moved up onto the sampler-friendly grid.
    """
    d = positive_exact(sensitivity, "sensitivity")
    return sampler_friendly_sigma_sq(d * d / (2 * positive_exact(rho, "rho")))


def calibrate_discrete_gaussian(
    epsilon: RealLike, delta: RealLike, sensitivity: RationalLike
) -> GaussianCalibration:
    """Smallest-noise discrete Gaussian meeting (epsilon, delta) at L2 sensitivity D.

    rho is the largest grid value meeting the target (rounded down), sigma^2 = D^2/(2 rho)
    rounded up; the returned ``rho`` is the cost of that sigma, at most the target rho.
    """
    sigma_sq = sigma_sq_for_rho(sensitivity, rho_for_epsilon(epsilon, delta))
    return GaussianCalibration(sigma_sq, rho_discrete_gaussian_sq(sensitivity, sigma_sq))


def calibrate_discrete_laplace(epsilon: RealLike, sensitivity: RationalLike) -> Fraction:
    """The scale ``t >= D / epsilon`` (rounded up onto the sampler grid) for pure epsilon-DP."""
    e = real(epsilon, "epsilon")
    if e <= 0:
        raise ConfigError(f"epsilon must be > 0, got {float(e)}")
    return sampler_friendly_scale(positive_exact(sensitivity, "sensitivity") / e)
