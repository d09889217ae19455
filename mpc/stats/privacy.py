"""Noise plans: from a signed job spec to exact integer noise and its privacy cost.

Pure. The coordinator and every party call :func:`plan_noise` on the same spec and get the same
plan, so each party sizes its own noise from the job it verified, never from a number the
coordinator sends. All quantities live in the integer fixed-point domain: sensitivities are
``ceil(bound * 2^f)`` and the noise is an integer added to the encoded statistic mod 2^64.

Privacy argument, per statistic (add/remove one record; bounds enforced by clamping at every
honest party, on encoded values):

* count: one entry, L2 sensitivity ``2^f``;
* sum of k columns: one group, L2 sensitivity ``||(ceil(max(|L_c|,|U_c|) 2^f))_c||_2``;
* mean of k columns: centred sums ``sum(x - m)`` (sensitivity ``(U-L)/2`` per column, L2 over
  columns) and the count, the zCDP budget split evenly between the two groups
  (:func:`mpc.dp.split_mean_budget` explains why), released through the estimator
  ``m + (S + Z_S) / max(1, n + Z_N)`` clamped to ``[L, U]`` (post-processing).
* variance of k columns: centred sums ``sum(x - m)`` (sensitivity ``(U-L)/2`` per column),
  centred squares ``sum((x - m)^2)`` (sensitivity ``((U-L)/2)^2`` per column; every encoded term
  clamped to its integer bound) and the count (1), the zCDP budget split evenly in thirds over
  the three groups (simple and symmetric: with ``h = (U-L)/2`` all three noises enter the
  estimator ``(S2 - S1^2/n)/(n-1)`` at the scale ``h^2/n`` in the worst case), released clamped
  to ``[0, h^2]`` (post-processing);
* histogram over b bins: one group of b entries, L2 (and L1) sensitivity ``2^f`` — adding or
  removing one record changes exactly one bin by one; noisy counts are released rounded to
  non-negative integers.

Grouped jobs (``group_by``, :mod:`mpc.stats.basic`): every segment of the vector is repeated
across all cells and noised as one group over all of them; one row lies in exactly one cell,
so each group's sensitivity is one cell's. A ``where`` filter only drops rows (sensitivity
unchanged). Statistics with their own ``dp_groups`` (:class:`mpc.stats.base.StatisticDef`)
give their groups directly, already over the frame.

Central mode adds ``N_Z(0, sigma^2)`` per entry at the coordinator (cost ``D^2/(2 sigma^2)``).
Distributed mode has each of the n parties add ``N_Z(0, sigma^2 / (n - t))``; only the
``n - t`` honest shares count, and the cost is the Kairouz-Liu-Steinke bound for their sum.
Pure epsilon-DP (``delta = 0``, central only) uses the discrete Laplace with the L1
sensitivity, charged in zCDP as ``epsilon^2 / 2``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from math import isqrt

import numpy as np

from mpc import dp
from mpc.dp.accountant import UNITS_PER_ONE, units_down, units_up
from mpc.errors import QueryError
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    NoiseMode,
    PrivacySpec,
    Statistic,
)
from mpc.ring import RingVector, check_headroom
from mpc.stats.base import NoiseGroupShape

#: Headroom slack for noise: P(|Z| > 40 sigma) < 2 exp(-800), far below any failure we model.
NOISE_TAIL_SIGMAS = 40


@dataclass(frozen=True)
class NoiseGroup:
    """Entries ``[start, stop)`` of the statistic noised together."""

    name: str
    start: int
    stop: int
    sensitivity: int  # L2 (Gaussian) or L1 (Laplace), fixed-point units
    sigma_sq: Fraction  # Gaussian: per-party variance in distributed mode, else the total
    laplace_scale: Fraction | None = None  # set for pure epsilon-DP


@dataclass(frozen=True)
class NoisePlan:
    privacy: PrivacySpec
    groups: tuple[NoiseGroup, ...]
    parties: int
    cost: dp.PrivacyCost

    @property
    def distributed(self) -> bool:
        return self.privacy.noise is NoiseMode.DISTRIBUTED

    def sample(self, length: int) -> np.ndarray:
        """One party's noise (distributed) or the coordinator's (central), as int64."""
        noise = np.zeros(length, dtype=np.int64)
        for group in self.groups:
            size = group.stop - group.start
            if group.laplace_scale is not None:
                noise[group.start : group.stop] = dp.sample_discrete_laplace(
                    group.laplace_scale, size
                )
            else:
                noise[group.start : group.stop] = dp.sample_discrete_gaussian(group.sigma_sq, size)
        return noise

    def total_variance(self, group: NoiseGroup) -> Fraction:
        """Variance proxy of all the noise in a released entry of ``group`` (for error bars)."""
        if group.laplace_scale is not None:
            t = group.laplace_scale
            return 2 * t * t  # sub-exponential; used only for the displayed sigma
        if self.distributed:
            return dp.distributed_total_sigma_sq(group.sigma_sq, self.parties)
        return group.sigma_sq

    def tail_bound(self) -> float:
        """A bound on |total noise| per entry in fixed-point units (for the headroom proof)."""
        worst = max(float(self.total_variance(g)) for g in self.groups)
        return NOISE_TAIL_SIGMAS * math.sqrt(worst)


def add_noise(statistic: RingVector, noise: np.ndarray) -> RingVector:
    """Add int64 noise to a ring vector modulo 2^64 (two's complement)."""
    return np.add(statistic, noise.view(np.uint64))


def _l2(values: list[int]) -> int:
    """ceil of the Euclidean norm of integers, exactly."""
    square = sum(v * v for v in values)
    root = isqrt(square)
    return root if root * root == square else root + 1


def _exact(value: float) -> Fraction:
    return Fraction(value)  # a float's exact binary value


@dataclass(frozen=True)
class _Shape:
    """The parts of a job spec that noise depends on."""

    statistic: Statistic
    columns: tuple[ColumnBound, ...]
    frac_bits: int
    bins: int = 0  # histogram only
    cells: int = 1  # cells of the frame (groups; a histogram's bins are counted in ``bins``)


def _groups(spec: _Shape) -> list[NoiseGroupShape]:
    """(name, start, stop, l2, l1, rho share) per group, before calibration.

    A grouped vector (:mod:`mpc.stats.basic`) repeats every segment across all cells, so each
    group spans ``cells`` times its ungrouped entries; its sensitivity is one cell's, since a
    row lies in exactly one cell and moves only that cell's entries.
    """
    g = spec.cells
    return [
        (name, start * g, stop * g, l2, l1, share)
        for name, start, stop, l2, l1, share in _cell_groups(spec)
    ]


def _cell_groups(spec: _Shape) -> list[NoiseGroupShape]:
    """The groups of one cell (the ungrouped vector)."""
    f = spec.frac_bits
    k = len(spec.columns)
    one = dp.count_sensitivity(f)
    if spec.statistic is Statistic.COUNT:
        return [("count", 0, 1, one, one, Fraction(1))]
    if spec.statistic is Statistic.SUM:
        per = [dp.sum_sensitivity(_exact(b.lo), _exact(b.hi), f) for b in spec.columns]
        return [("sum", 0, k, _l2(per), sum(per), Fraction(1))]
    if spec.statistic is Statistic.MEAN:
        per = [dp.centred_sum_sensitivity(_exact(b.lo), _exact(b.hi), f) for b in spec.columns]
        if not all(per):
            raise QueryError("a mean column has lo == hi: its mean is known without a query")
        rho_sum, rho_count = dp.split_mean_budget(Fraction(1))
        return [
            ("centred sum", 0, k, _l2(per), sum(per), rho_sum),
            ("count", k, k + 1, one, one, rho_count),
        ]
    if spec.statistic is Statistic.VARIANCE:
        lows_highs = [(_exact(b.lo), _exact(b.hi)) for b in spec.columns]
        per = [dp.centred_sum_sensitivity(lo, hi, f) for lo, hi in lows_highs]
        if not all(per):
            raise QueryError("a variance column has lo == hi: its variance is known (0)")
        squares = [dp.fixed_point_bound(((hi - lo) / 2) ** 2, f) for lo, hi in lows_highs]
        third = Fraction(1, 3)
        return [
            ("centred sum", 0, k, _l2(per), sum(per), third),
            ("centred square", k, 2 * k, _l2(squares), sum(squares), third),
            ("count", 2 * k, 2 * k + 1, one, one, third),
        ]
    if spec.statistic is Statistic.HISTOGRAM:
        # Add/remove one record: exactly one bin moves by one count (L1 = L2 = 2^f).
        sensitivity = dp.histogram_sensitivity(f)
        return [("histogram", 0, spec.bins, sensitivity, sensitivity, Fraction(1))]
    raise QueryError(f"{spec.statistic.value} does not support differential privacy")


def plan_noise(spec: JobSpec) -> NoisePlan | None:
    """The noise plan of a DP job, or None for a job without privacy."""
    if spec.privacy is None:
        return None
    try:
        if spec.training is not None:
            from mpc.stats.privacy_training import _plan_training  # imports this module

            return _plan_training(
                spec.columns, spec.frac_bits, len(spec.participants), spec.privacy, spec.training
            )
        # The plan depends only on public parameters, not on the job id or who takes part:
        # cache it (calibration searches take milliseconds; every party and the coordinator
        # plan).
        return _plan(noise_groups(spec), len(spec.participants), spec.privacy)
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        # Bounds so wide (or frac_bits so high) that the noise scale leaves float range: a
        # property of the spec alone, refused like any other unsafe job.
        raise QueryError(
            "the noise for these bounds and frac_bits cannot be calibrated: narrow the "
            "bounds or lower frac_bits"
        ) from exc


def noise_groups(spec: JobSpec) -> tuple[NoiseGroupShape, ...]:
    """The job's noise groups before calibration: the statistic's own ``dp_groups`` when it
    has them, else the built-in groups of :func:`_groups` over the job's frame shape."""
    from mpc.stats import definition  # the registry imports this module's callers

    own = definition(spec.statistic).dp_groups
    if own is not None:
        return tuple(own(spec))
    bins = len(spec.bin_edges) - 1 if spec.bin_edges else 0
    return _builtin_groups(spec.statistic, spec.columns, spec.frac_bits, bins, spec.frame.cells)


@functools.lru_cache(maxsize=512)
def _builtin_groups(
    statistic: Statistic,
    columns: tuple[ColumnBound, ...],
    frac_bits: int,
    bins: int,
    cells: int,
) -> tuple[NoiseGroupShape, ...]:
    return tuple(_groups(_Shape(statistic, columns, frac_bits, bins, cells)))


@functools.lru_cache(maxsize=512)
def _grid_down(value: Fraction) -> Fraction:
    """A group's share of the budget, rounded down onto the ledger grid: costs are charged
    rounded *up* per group, so shares on the grid keep their sum within the request."""
    return Fraction(units_down(value), UNITS_PER_ONE)


def _plan(shapes: tuple[NoiseGroupShape, ...], n: int, privacy: PrivacySpec) -> NoisePlan:
    """Calibrated noise for the groups ``shapes`` (which carry the frame's shape: the cache
    key is every group's extent and sensitivity)."""
    groups: list[NoiseGroup] = []
    cost = dp.PrivacyCost()
    if privacy.delta == 0:
        # Pure epsilon-DP: discrete Laplace per group with its L1 sensitivity; epsilon splits
        # across groups like the zCDP budget (sequential composition).
        if privacy.noise is not NoiseMode.CENTRAL:
            raise QueryError("pure epsilon-DP (delta = 0) is available in central mode only")
        for name, start, stop, _, l1, share in shapes:
            scale = dp.calibrate_discrete_laplace(_grid_down(_exact(privacy.epsilon) * share), l1)
            groups.append(NoiseGroup(name, start, stop, l1, Fraction(0), scale))
            cost = cost + dp.PrivacyCost.discrete_laplace(l1, scale)
        return NoisePlan(privacy, tuple(groups), n, cost)
    rho = dp.rho_for_epsilon(privacy.epsilon, privacy.delta)
    for name, start, stop, l2, l1, share in shapes:
        group, group_cost = _calibrate(
            name, start, stop, l2, l1, _grid_down(rho * share), privacy, n
        )
        groups.append(group)
        cost = cost + group_cost
    return NoisePlan(privacy, tuple(groups), n, cost)


def _calibrate(
    name: str,
    start: int,
    stop: int,
    l2: int,
    l1: int,
    target: Fraction,
    privacy: PrivacySpec,
    n: int,
) -> tuple[NoiseGroup, dp.PrivacyCost]:
    """One Gaussian group at zCDP ``target``, central or distributed (for :func:`_plan` and
    the training plans of :mod:`mpc.stats.privacy_training`)."""
    if privacy.noise is NoiseMode.CENTRAL:
        sigma_sq = dp.sigma_sq_for_rho(l2, target)
        return NoiseGroup(name, start, stop, l2, sigma_sq), dp.PrivacyCost.discrete_gaussian(
            l2, sigma_sq
        )
    honest = dp.honest_noise_shares(n, privacy.colluders)
    # Aim a hair below the target: the KLS bound adds a (tiny) correction on top of
    # D^2/(2 s^2), charged as at least one ledger unit.
    sigma_sq = dp.sigma_sq_for_rho(l2, target * Fraction(999_999, 1_000_000))
    sigma_p_sq = dp.distributed_sigma_sq(sigma_sq, n, privacy.colluders)
    cost = dp.PrivacyCost.distributed_discrete_gaussian(
        l2, sigma_p_sq, honest, l1_sensitivity=l1, dim=stop - start
    )
    # The sum of discrete Gaussians is not exactly one; when the KLS correction makes the
    # cost exceed the target, grow the per-party variance until it fits (bounded).
    for _ in range(64):
        # Costs are stored rounded up to the ledger grid, so compare on that grid.
        if cost.rho_units <= units_up(target):
            break
        sigma_p_sq = dp.distributed_sigma_sq(sigma_p_sq * Fraction(101, 100), 1, 0)
        cost = dp.PrivacyCost.distributed_discrete_gaussian(
            l2, sigma_p_sq, honest, l1_sensitivity=l1, dim=stop - start
        )
    return NoiseGroup(name, start, stop, l2, sigma_p_sq), cost


def prove_headroom(spec: JobSpec) -> NoisePlan | None:
    """Prove from the spec alone that no aggregate can wrap the ring, or raise QueryError;
    return the job's noise plan.

    The proof covers the declared bounds over the participants' public row limits and, with
    noise, the noise's tail (40 sigma: never exceeded). The coordinator runs it to choose
    ``frac_bits``; every party runs it again on the spec it was sent, before reading data.
    """
    from mpc.stats import definition  # the registry imports this module's callers

    plan = plan_noise(spec)
    slack = plan.tail_bound() / (1 << spec.frac_bits) if plan else 0.0
    components = [replace(c, extra=slack) for c in definition(spec.statistic).components(spec)]
    check_headroom(components, spec.total_max_rows, spec.frac_bits)
    return plan


@dataclass(frozen=True)
class NoiseReport:
    """What a user needs to judge a noisy value: its noise scale and a 95% error bound."""

    sigma: tuple[float, ...]  # per released value, data units
    error_bound_95: tuple[float, ...]


def encoded_scale(frac_bits: int) -> float:
    return math.ldexp(1.0, frac_bits)


__all__ = [
    "NOISE_TAIL_SIGMAS",
    "NoiseGroup",
    "NoisePlan",
    "NoiseReport",
    "add_noise",
    "noise_groups",
    "plan_noise",
    "prove_headroom",
]
