"""Privacy accounting: zCDP costs, (epsilon, delta) conversion, calibration, ledger arithmetic.

Privacy argument (all under add/remove-one-record neighbours):

* The discrete Gaussian ``N_Z(0, sigma^2)`` added to an integer statistic of L2 sensitivity D
  is ``rho = D^2 / (2 sigma^2)``-zCDP (Canonne, Kamath, Steinke 2020, Thm. 14; the same rho as
  the continuous Gaussian). zCDP composes by adding rho (Bun, Steinke 2016, Lemma 2.3).
* The discrete Laplace of scale t at L1 sensitivity D is ``epsilon = D / t`` pure DP. The
  ledger records it twice: as ``rho = epsilon^2 / 2`` in the zCDP tally (pure DP implies that
  zCDP: Bun-Steinke Prop. 1.4) and as ``epsilon`` in a pure-epsilon tally beside it.
* Spent epsilon at delta is the tighter of two sound bounds (:meth:`PrivacyCost.epsilon`):
  (a) the zCDP (or RDP) conversion of *all* charges, pure ones counted as ``epsilon^2/2``;
  (b) the sum of the pure charges' epsilons plus the conversion of the *other* charges alone
  at the whole delta (basic composition: an eps1-DP and an (eps2, delta)-DP release together
  are (eps1 + eps2, delta)-DP). So one pure query of epsilon 1 costs 1, not the 5.2 its rho
  of 1/2 converts to at delta 1e-6, and many small pure queries still benefit from zCDP's
  square-root composition through (a).
* Distributed noise: when h honest parties each add ``N_Z(0, sigma_p^2)``, their sum is close to,
  but not exactly, a discrete Gaussian. Kairouz, Liu, Steinke 2021 ("The Distributed Discrete
  Gaussian Mechanism", Prop. 14 in the arXiv version, as used by their published accounting
  code) bound its privacy by ``rho = (1/2) min(D2^2/s^2 + 2 D1 tau/s + tau^2 d,
  (D2/s + sqrt(d) tau)^2)`` with ``s^2 = h sigma_p^2``, ``tau = 10 sum_{k=1}^{h-1}
  exp(-2 pi^2 sigma_p^2 k/(k+1))``, needing ``sigma_p >= 1/2``. The extra term is negligible in
  the fixed-point regime (sigma_p in the thousands: tau underflows) but not for, e.g., counts
  noised with sigma_p ~ 1. :func:`rho_distributed_discrete_gaussian` charges it.
* rho-zCDP implies (epsilon, delta)-DP with ``delta = inf_{a>1} exp((a-1)(a rho - eps))
  (1-1/a)^a / (a-1)`` (Canonne, Kamath, Steinke 2020, Cor. 13). The optimisation over ``a`` is
  one-dimensional and convex; any ``a`` gives a valid bound, so numerical error in locating the
  optimum only makes results conservative. The last floating-point evaluation is rounded *up*.

Ledger model: :class:`PrivacyCost` holds rho (and, for subsampled rounds, an RDP curve on fixed
integer orders) as integers in units of ``10**-12``, each rounded **up**; :class:`Budget` holds
epsilon in the same units rounded **down** and delta as an exact fraction. Whether a job fits is
then a comparison of integers: no float tolerance, and the same answer on every party.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from mpc.dp import rdp
from mpc.dp._floats import round_up
from mpc.dp._validate import RationalLike, RealLike, count, exact, positive_exact, real
from mpc.dp.samplers import sampler_friendly_scale, sampler_friendly_sigma_sq
from mpc.errors import ConfigError, PrivacyBudgetError

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


# ------------------------------------------------------------------------------- ledger


@dataclass(frozen=True, slots=True)
class PrivacyCost:
    """What releases cost, in integer units of 1e-12, rounded up; adds up under composition.

    ``rho_units`` is the zCDP part. ``rdp_units`` is an optional RDP curve on
    :data:`mpc.dp.rdp.INTEGER_ORDERS` (empty means zero) for Poisson-subsampled rounds, which are
    not zCDP. The total privacy loss at order a is ``a * rho + rdp(a)``.

    Pure epsilon-DP charges are in ``rho_units`` too (as ``epsilon^2 / 2``); ``pure_units`` is
    the sum of their epsilons and ``pure_rho_units`` the part of ``rho_units`` they account
    for, so the rest (``rho_units - pure_rho_units`` and the RDP curve) is what the other
    charges cost. See the module docstring for how the two tallies combine.
    """

    rho_units: int = 0
    rdp_units: tuple[int, ...] = ()
    pure_units: int = 0
    pure_rho_units: int = 0

    def __post_init__(self) -> None:
        count(self.rho_units, "rho_units")
        count(self.pure_units, "pure_units")
        count(self.pure_rho_units, "pure_rho_units")
        if self.pure_rho_units > self.rho_units:
            raise ConfigError("pure_rho_units cannot exceed rho_units")
        if self.rdp_units and len(self.rdp_units) != len(rdp.INTEGER_ORDERS):
            raise ConfigError(f"rdp_units must have {len(rdp.INTEGER_ORDERS)} entries")
        for value in self.rdp_units:
            count(value, "rdp_units entry")

    @classmethod
    def from_rho(cls, rho: RationalLike) -> PrivacyCost:
        """A zCDP cost, rounded up."""
        value = exact(rho, "rho")
        if value < 0:
            raise ConfigError(f"rho must be >= 0, got {value}")
        return cls(rho_units=units_up(value))

    @classmethod
    def discrete_gaussian(cls, sensitivity: RationalLike, sigma_sq: RationalLike) -> PrivacyCost:
        """One central discrete Gaussian release."""
        return cls.from_rho(rho_discrete_gaussian_sq(sensitivity, sigma_sq))

    @classmethod
    def discrete_laplace(cls, sensitivity: RationalLike, scale: RationalLike) -> PrivacyCost:
        """One discrete Laplace release: pure ``epsilon = D/t``, also as zCDP ``epsilon^2/2``."""
        return cls.pure_epsilon(epsilon_discrete_laplace(sensitivity, scale))

    @classmethod
    def pure_epsilon(cls, epsilon: RationalLike) -> PrivacyCost:
        """A pure epsilon-DP release, in both tallies (each rounded up)."""
        rho_units = units_up(rho_from_pure_epsilon(epsilon))
        return cls(
            rho_units=rho_units,
            pure_units=units_up(exact(epsilon, "epsilon")),
            pure_rho_units=rho_units,
        )

    @classmethod
    def distributed_discrete_gaussian(
        cls,
        l2_sensitivity: RationalLike,
        sigma_p_sq: RationalLike,
        honest_parties: int,
        *,
        l1_sensitivity: RationalLike | None = None,
        dim: int = 1,
    ) -> PrivacyCost:
        """One release noised by ``honest_parties`` per-party discrete Gaussians (KLS 2021)."""
        return cls.from_rho(
            rho_distributed_discrete_gaussian(
                l2_sensitivity, sigma_p_sq, honest_parties, l1_sensitivity=l1_sensitivity, dim=dim
            )
        )

    @classmethod
    def poisson_subsampled(
        cls, sampling_rate: RealLike, rho_per_round: RationalLike, rounds: int
    ) -> PrivacyCost:
        """``rounds`` Poisson-subsampled releases of a rho-zCDP mechanism (Zhu-Wang bound)."""
        per_round = rdp.rdp_poisson_subsampled_zcdp(
            sampling_rate, float(exact(rho_per_round, "rho_per_round")), rdp.INTEGER_ORDERS
        )
        total = rdp.scale_rdp(per_round, rounds)
        return cls(rdp_units=tuple(units_up(Fraction(v)) for v in total))

    @property
    def rho(self) -> Fraction:
        """The zCDP part as an exact fraction."""
        return Fraction(self.rho_units, UNITS_PER_ONE)

    def __add__(self, other: PrivacyCost) -> PrivacyCost:
        if not isinstance(other, PrivacyCost):
            return NotImplemented
        if not self.rdp_units or not other.rdp_units:
            curve = self.rdp_units or other.rdp_units
        else:
            curve = tuple(a + b for a, b in zip(self.rdp_units, other.rdp_units, strict=True))
        return PrivacyCost(
            self.rho_units + other.rho_units,
            curve,
            self.pure_units + other.pure_units,
            self.pure_rho_units + other.pure_rho_units,
        )

    @property
    def pure_epsilon_total(self) -> Fraction:
        """The sum of the pure charges' epsilons (0 when there are none)."""
        return Fraction(self.pure_units, UNITS_PER_ONE)

    @property
    def is_pure(self) -> bool:
        """Whether every charge in this total is pure epsilon-DP (and there is one)."""
        return self.pure_units > 0 and self.pure_rho_units == self.rho_units and not self.rdp_units

    def epsilon(self, delta: RealLike) -> Fraction:
        """The epsilon of (epsilon, delta)-DP this total cost implies, rounded up.

        The smaller of the conversion of everything and "pure epsilons + conversion of the
        rest" (module docstring); both are sound, so their minimum is.
        """
        combined = self._converted(delta)
        if not self.pure_units:
            return combined
        rest = PrivacyCost(self.rho_units - self.pure_rho_units, self.rdp_units)
        split = self.pure_epsilon_total + (
            rest._converted(delta) if rest.rho_units or rest.rdp_units else Fraction(0)
        )
        return min(combined, split)

    def _converted(self, delta: RealLike) -> Fraction:
        """The zCDP/RDP conversion of the whole cost at ``delta`` (pure charges as rho)."""
        if not self.rdp_units:
            return epsilon_for_rho(self.rho, delta)
        rho = float(self.rho)
        curve = [
            a * rho + units / UNITS_PER_ONE
            for a, units in zip(rdp.INTEGER_ORDERS, self.rdp_units, strict=True)
        ]
        eps, _ = rdp.epsilon_from_rdp(rdp.INTEGER_ORDERS, curve, delta)
        return _grid_up(eps)


@dataclass(frozen=True, slots=True)
class Budget:
    """An (epsilon, delta) budget: epsilon in integer units of 1e-12 rounded down, delta exact."""

    epsilon_units: int
    delta: Fraction

    def __post_init__(self) -> None:
        count(self.epsilon_units, "epsilon_units")
        _check_delta(self.delta)

    @classmethod
    def from_epsilon_delta(cls, epsilon: RealLike, delta: RealLike) -> Budget:
        """A budget of (epsilon, delta), epsilon rounded down to the unit grid."""
        e = real(epsilon, "epsilon")
        if e < 0:
            raise ConfigError(f"epsilon must be >= 0, got {float(e)}")
        d = real(delta, "delta")
        _check_delta(d)
        return cls(units_down(e), d)

    @property
    def epsilon(self) -> Fraction:
        return Fraction(self.epsilon_units, UNITS_PER_ONE)

    def spent_epsilon(self, spent: PrivacyCost) -> Fraction:
        """Epsilon (at this budget's delta) already used by ``spent``, rounded up."""
        return spent.epsilon(self.delta)

    def allows(self, spent: PrivacyCost, cost: PrivacyCost) -> bool:
        """Whether ``cost`` can be added to ``spent`` without exceeding the budget."""
        return (spent + cost).epsilon(self.delta) <= self.epsilon

    def charge(self, spent: PrivacyCost, cost: PrivacyCost) -> PrivacyCost:
        """The new total after charging ``cost``; raises PrivacyBudgetError if it does not fit."""
        total = spent + cost
        needed = total.epsilon(self.delta)
        if needed > self.epsilon:
            raise PrivacyBudgetError(
                f"the job needs a total epsilon of {float(needed):.6g} at "
                f"delta={float(self.delta):.3g} but the budget is {float(self.epsilon):.6g}; "
                "ask for less accuracy or a new budget"
            )
        return total

    def remaining_rho(self, spent: PrivacyCost) -> Fraction:
        """The largest zCDP rho (on the unit grid) that could still be charged."""
        if not self.allows(spent, PrivacyCost()):
            return Fraction(0)
        lo, hi = 0, 1
        while self.allows(spent, PrivacyCost(rho_units=hi)):
            lo, hi = hi, hi * 2
            if hi > _MAX_RHO_UNITS:
                raise ConfigError("the budget is too large to measure in rho")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.allows(spent, PrivacyCost(rho_units=mid)):
                lo = mid
            else:
                hi = mid
        return Fraction(lo, UNITS_PER_ONE)
