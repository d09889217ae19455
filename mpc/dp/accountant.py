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

from dataclasses import dataclass
from fractions import Fraction

from mpc.dp import rdp
from mpc.dp._validate import RationalLike, RealLike, count, exact, real
from mpc.dp.zcdp import (
    _MAX_RHO_UNITS,
    UNITS_PER_ONE,
    GaussianCalibration,
    _check_delta,
    _grid_up,
    calibrate_discrete_gaussian,
    calibrate_discrete_laplace,
    compose_rho,
    delta_for_rho,
    distributed_tau,
    epsilon_discrete_laplace,
    epsilon_for_rho,
    rho_discrete_gaussian,
    rho_discrete_gaussian_sq,
    rho_distributed_discrete_gaussian,
    rho_for_epsilon,
    rho_from_pure_epsilon,
    sigma_sq_for_rho,
    units_down,
    units_up,
)
from mpc.errors import ConfigError, PrivacyBudgetError

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


__all__ = [
    "UNITS_PER_ONE",
    "Budget",
    "GaussianCalibration",
    "PrivacyCost",
    "calibrate_discrete_gaussian",
    "calibrate_discrete_laplace",
    "compose_rho",
    "delta_for_rho",
    "distributed_tau",
    "epsilon_discrete_laplace",
    "epsilon_for_rho",
    "rho_discrete_gaussian",
    "rho_discrete_gaussian_sq",
    "rho_distributed_discrete_gaussian",
    "rho_for_epsilon",
    "rho_from_pure_epsilon",
    "sigma_sq_for_rho",
    "units_down",
    "units_up",
]
