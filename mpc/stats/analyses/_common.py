"""Helpers shared by the analyses: per-cell centred moments through one frame aggregate, their
ring bounds and DP sensitivity groups, and the noise scale a finished result can quote.

Vector layout of a moment request over C cells, k columns and the column pairs P (a pair
``(i, i)`` is a centred square), term-major: ``[sum(x_i - m_i), cells of column 0, then of
column 1, ...][sum((x_i - m_i)(x_j - m_j)), cells of pair 0, then of pair 1, ...][count << f
per cell]``; entry (term t, cell g) of a block lies at ``start + t * C + g``. Every term's
cells are thus one contiguous range: one DP noise group each (:func:`moment_groups`).
"""

from __future__ import annotations

import importlib
import math
from fractions import Fraction
from math import isqrt
from typing import Any

import numpy as np

from mpc import dp
from mpc.errors import QueryError
from mpc.protocol.frame import Factor, Request, Term
from mpc.protocol.spec import ColumnBound, JobSpec, NoiseMode
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.base import LocalData, NoiseGroupShape

Pairs = tuple[tuple[int, int], ...]

#: The noise group of a moment vector's counts.
COUNT_GROUP = "count"


def exact(value: float) -> Fraction:
    return Fraction(value)  # a float's exact binary value


def l2_norm(values: list[int]) -> int:
    """ceil of the Euclidean norm of integers, exactly."""
    square = sum(v * v for v in values)
    root = isqrt(square)
    return root if root * root == square else root + 1


def half(bound: ColumnBound) -> float:
    return (bound.hi - bound.lo) / 2


def linear_bound(bound: ColumnBound, frac_bits: int) -> int:
    """Integer bound of one encoded centred value ``x - m``."""
    return dp.centred_sum_sensitivity(exact(bound.lo), exact(bound.hi), frac_bits)


def product_bound(a: ColumnBound, b: ColumnBound, frac_bits: int) -> int:
    """Integer bound of one encoded centred product ``(x_a - m_a)(x_b - m_b)``."""
    h_a = (exact(a.hi) - exact(a.lo)) / 2
    h_b = (exact(b.hi) - exact(b.lo)) / 2
    return dp.fixed_point_bound(h_a * h_b, frac_bits)


def count_entries(counts: np.ndarray, frac_bits: int) -> RingVector:
    """Counts encoded like the count statistic (``count << frac_bits``)."""
    return np.left_shift(np.asarray(counts, dtype=np.int64).view(np.uint64), np.uint64(frac_bits))


def moment_length(spec: JobSpec, pairs: Pairs) -> int:
    return spec.frame.cells * (len(spec.columns) + len(pairs) + 1)


def moment_local(spec: JobSpec, data: LocalData, pairs: Pairs) -> RingVector:
    """The moment vector of this party's rows (see the module docstring)."""
    f = spec.frac_bits
    cols = spec.columns
    factors = [Factor(b.column, b.lo, b.hi, centred=True) for b in cols]
    terms = [Term((fac,), linear_bound(b, f)) for fac, b in zip(factors, cols, strict=True)]
    terms += [Term((factors[i], factors[j]), product_bound(cols[i], cols[j], f)) for i, j in pairs]
    agg = data.aggregate(Request(spec.frame, tuple(terms), f))
    sums = np.asarray(agg.sums, dtype=np.uint64).reshape(len(terms), spec.frame.cells)
    k = len(cols)
    return np.concatenate(
        [sums[:k].ravel(), sums[k:].ravel(), count_entries(agg.counts, f)]
    ).astype(np.uint64)


def split_moments(
    spec: JobSpec, pairs: Pairs, revealed: FloatVector
) -> tuple[FloatVector, FloatVector, FloatVector]:
    """``(sums[cell, column], products[cell, pair], counts[cell])`` of a decoded vector."""
    cells, k, p = spec.frame.cells, len(spec.columns), len(pairs)
    values = np.asarray(revealed, dtype=np.float64)
    sums = values[: cells * k].reshape(k, cells).T
    products = values[cells * k : cells * (k + p)].reshape(p, cells).T
    counts = values[cells * (k + p) : cells * (k + p + 1)]
    return sums, products, counts


def sum_index(spec: JobSpec, column: int, cell: int) -> int:
    """Index in the moment vector of column ``column``'s centred sum in ``cell``."""
    return column * spec.frame.cells + cell


def product_index(spec: JobSpec, pair: int, cell: int) -> int:
    """Index in the moment vector of pair number ``pair``'s centred product in ``cell``."""
    return (len(spec.columns) + pair) * spec.frame.cells + cell


def count_index(spec: JobSpec, pairs: Pairs, cell: int) -> int:
    """Index in the moment vector of ``cell``'s count."""
    return (len(spec.columns) + len(pairs)) * spec.frame.cells + cell


def moment_components(spec: JobSpec, pairs: Pairs) -> list[Component]:
    cols = spec.columns
    return [
        *(Component(f"column {b.column!r} (centred)", half(b)) for b in cols),
        *(
            Component(
                f"columns {cols[i].column!r} x {cols[j].column!r} (centred product)",
                half(cols[i]) * half(cols[j]),
            )
            for i, j in pairs
        ),
        Component("count", 1.0),
    ]


def moment_groups(spec: JobSpec, pairs: Pairs) -> list[NoiseGroupShape]:
    """Noise groups of a moment vector: one per column's centred sums, one per pair's centred
    products and one for the counts, each over all cells.

    One row lies in one cell, so it moves one entry of each group, by at most that entry's
    bound: a group's L2 and L1 sensitivity are both its own bound. The budget is split in
    thirds as for the variance (sums, products, count), each third equally among its groups.
    Under zCDP (and sequential composition for pure epsilon) the total is the same as one
    group per third, but every entry's noise is now sized to its own range, not to the norm
    over all columns: a narrow column's variance is not drowned by a wide column's square.
    """
    f = spec.frac_bits
    cols = spec.columns
    cells, k, p = spec.frame.cells, len(cols), len(pairs)
    linear = [linear_bound(b, f) for b in cols]
    if not all(linear):
        raise QueryError(f"a {spec.statistic.value} column has lo == hi: its spread is known")
    third = Fraction(1, 3)
    groups: list[NoiseGroupShape] = []
    for i, (b, bound) in enumerate(zip(cols, linear, strict=True)):
        start = sum_index(spec, i, 0)
        groups.append((sum_group(b), start, start + cells, bound, bound, third / k))
    for n, (i, j) in enumerate(pairs):
        bound = product_bound(cols[i], cols[j], f)
        start = product_index(spec, n, 0)
        groups.append(
            (product_group(cols[i], cols[j]), start, start + cells, bound, bound, third / p)
        )
    one = dp.count_sensitivity(f)
    start = count_index(spec, pairs, 0)
    groups.append((COUNT_GROUP, start, start + cells, one, one, third))
    return groups


def sum_group(bound: ColumnBound) -> str:
    """The noise group of one column's centred sums."""
    return f"centred sum {bound.column!r}"


def product_group(a: ColumnBound, b: ColumnBound) -> str:
    """The noise group of one pair's centred products (a centred square when a is b)."""
    return f"centred product {a.column!r} x {b.column!r}"


def noise_variance(spec: JobSpec, group: str, groups: list[NoiseGroupShape]) -> float:
    """Variance of all the noise in one released entry of ``group``, in data units squared
    (NaN without privacy or when it cannot be computed). Public: a function of the spec."""
    if spec.privacy is None:
        return math.nan
    scale = math.ldexp(1.0, -2 * spec.frac_bits)
    try:
        from mpc.stats.privacy import plan_noise

        plan = plan_noise(spec)
        if plan is not None:
            for g in plan.groups:
                if g.name == group:
                    return float(plan.total_variance(g)) * scale
    except QueryError:
        pass
    # The registry's planner does not know this statistic: the same calibration, directly.
    try:
        privacy = spec.privacy
        for name, _, _, l2, l1, share in groups:
            if name != group:
                continue
            if privacy.delta == 0:
                t = dp.calibrate_discrete_laplace(privacy.epsilon * share, l1)
                return float(2 * t * t) * scale
            rho = dp.rho_for_epsilon(privacy.epsilon, privacy.delta)
            sigma_sq = dp.sigma_sq_for_rho(l2, rho * share)
            if privacy.noise is NoiseMode.DISTRIBUTED:
                n = len(spec.participants)
                per = dp.distributed_sigma_sq(sigma_sq, n, privacy.colluders)
                sigma_sq = dp.distributed_total_sigma_sq(per, n)
            return float(sigma_sq) * scale
    except (QueryError, ValueError, ArithmeticError):
        pass
    return math.nan


def _scipy_stats() -> Any:
    # scipy ships without type information: one untyped entry point for the whole package.
    return importlib.import_module("scipy.stats")


def chi2_sf(x: float, dof: float) -> float:
    """``P(X > x)`` for a chi-square variable with ``dof`` degrees of freedom."""
    return float(_scipy_stats().chi2.sf(x, dof))


def t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom."""
    return float(_scipy_stats().t.sf(t, df))


def cell_names(spec: JobSpec) -> list[str]:
    """One display prefix per cell ("" without group keys)."""
    if not spec.group_by:
        return [""]
    return [", ".join(labels) + ": " for labels in spec.frame.cell_labels()]


__all__ = [
    "COUNT_GROUP",
    "Pairs",
    "cell_names",
    "chi2_sf",
    "count_entries",
    "count_index",
    "exact",
    "half",
    "l2_norm",
    "linear_bound",
    "moment_components",
    "moment_groups",
    "moment_length",
    "moment_local",
    "noise_variance",
    "product_bound",
    "product_group",
    "product_index",
    "split_moments",
    "sum_group",
    "sum_index",
    "t_sf",
]
