"""What a finished job releases besides its values: the noise in it (sigma and proven 95%
error bounds per value), the worst-case fixed-point error of each value, and the
coordinator's small-cell suppression of exact counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.protocol.frame import Frame, GroupKey
from mpc.protocol.spec import ColumnBound, JobSpec, Statistic
from mpc.ring import resolution
from mpc.stats.analyses import REGISTRY as _ANALYSES
from mpc.stats.analyses.noise import analysis_noise
from mpc.stats.analyses.tolerance import analysis_tolerances
from mpc.stats.basic import REGISTRY as _BASIC
from mpc.stats.basic import cell_blocks, cell_counts, framed
from mpc.stats.privacy import NoiseGroup, NoisePlan


@dataclass(frozen=True)
class NoiseOutcome:
    """The noise in a released result and what it cost (public)."""

    noise: str
    epsilon: float
    delta: float
    epsilon_spent: float
    rho_spent: float
    sigma: tuple[float, ...]
    error_bound_95: tuple[float, ...]
    #: Per value: "exact", "delta-method" or "upper bound" (what sigma is; the 95% bound is
    #: always a proven bound). Empty: not stated (older records).
    error_kind: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            **self.__dict__,
            "sigma": list(self.sigma),
            "error_bound_95": list(self.error_bound_95),
            "error_kind": list(self.error_kind),
        }


def suppress_small_cells(counts: np.ndarray, min_count: int) -> np.ndarray:
    """Exact counts in ``(0, min_count)`` become NaN (DataSHIELD's ``nfilter.tab`` rule).

    A client-facing disclosure control: it stops an honest coordinator from handing a client
    a cell that singles out one or two rows. It is not a defence against a curious
    coordinator, which sees the exact counts (the parties' max_bins policy and DP are).
    """
    small = (counts > 0) & (counts < min_count)
    return np.where(small, np.nan, counts)


#: What a reported sigma / error bound is (``NoiseOutcome.error_kind``).
EXACT = "exact"  # the noise's own distribution: sigma is its standard deviation
DELTA_METHOD = "delta-method"  # first-order propagation of every noise through a ratio
UPPER_BOUND = "upper bound"  # a proven bound on the error's scale, not an estimate


def suppress_cells(
    spec: JobSpec, decoded: np.ndarray, values: np.ndarray, min_count: int
) -> np.ndarray:
    """The coordinator's small-cell rule on an exact result: an ungrouped histogram's counts
    in ``(0, min_count)`` (as always), and every value of a filtered or grouped result's cell
    with ``1 .. min_count - 1`` rows, taken from the cell counts the vector carries
    (:func:`mpc.stats.basic.cell_counts`)."""
    if min_count <= 1:
        return values
    if not framed(spec):
        if spec.statistic is Statistic.HISTOGRAM:
            return suppress_small_cells(values, min_count)
        return values
    if spec.statistic not in _BASIC:
        return values
    counts = cell_counts(spec, decoded)
    if counts is None or counts.size == 0 or values.size % counts.size:
        return values
    rows = np.array(values, dtype=np.float64).reshape(counts.size, -1)
    small = (counts > 0) & (counts < min_count)
    rows[small] = np.nan
    return rows.reshape(-1)


def _noise_outcome(
    spec: JobSpec, plan: NoisePlan, decoded: np.ndarray, released: np.ndarray | None = None
) -> NoiseOutcome:
    """:func:`_block_outcome`, per cell for a filtered or grouped sum, count, mean or
    variance: one sigma and bound per label, the largest over the cells (every cell of a sum
    or count carries the same noise; a mean's or variance's depends on the cell's noisy
    count)."""
    if spec.statistic not in _BUILT_IN:
        stated = analysis_noise(spec, plan, decoded, released) if released is not None else None
        if stated is not None:
            sigma, bound, kind = stated
            outcome = _block_outcome(spec, plan, decoded, released)
            return replace(outcome, sigma=sigma, error_bound_95=bound, error_kind=kind)
        return _per_label(spec, _block_outcome(spec, plan, decoded, released))
    if not framed(spec) or spec.statistic not in _PER_CELL:
        return _block_outcome(spec, plan, decoded, released)
    k = 1 if spec.statistic is Statistic.COUNT else len(spec.columns)
    if spec.statistic in (Statistic.SUM, Statistic.COUNT):
        out = _block_outcome(spec, plan, decoded, released)
        return replace(
            out,
            sigma=out.sigma[:k],
            error_bound_95=out.error_bound_95[:k],
            error_kind=out.error_kind[:k],
        )
    blocks = cell_blocks(spec, decoded)
    rows: list[np.ndarray | None] = (
        list(np.asarray(released).reshape(len(blocks), -1))
        if released is not None
        else [None] * len(blocks)
    )
    outs = [_block_outcome(spec, plan, b, r) for b, r in zip(blocks, rows, strict=True)]
    return replace(
        outs[0],
        sigma=tuple(max(o.sigma[j] for o in outs) for j in range(k)),
        error_bound_95=tuple(max(o.error_bound_95[j] for o in outs) for j in range(k)),
    )


_PER_CELL = (Statistic.SUM, Statistic.COUNT, Statistic.MEAN, Statistic.VARIANCE)
_BUILT_IN = (*_PER_CELL, Statistic.HISTOGRAM, Statistic.VECTOR_SUM, Statistic.TRAIN)


def _per_label(spec: JobSpec, out: NoiseOutcome) -> NoiseOutcome:
    """A statistic with its own noise groups: one sigma and bound per label (the entry's
    own when there is one entry per label, else the largest over all entries)."""
    from mpc.stats import definition

    labels = len(definition(spec.statistic).labels(spec))
    if len(out.sigma) == labels or not out.sigma:
        return out
    return replace(
        out,
        sigma=(max(out.sigma),) * labels,
        error_bound_95=(max(out.error_bound_95),) * labels,
        error_kind=(out.error_kind[0],) * labels if out.error_kind else (),
    )


def _block_outcome(
    spec: JobSpec, plan: NoisePlan, decoded: np.ndarray, released: np.ndarray | None = None
) -> NoiseOutcome:
    """Noise sigma, a 95% error bound and what kind of number they are, per released value.

    ``decoded`` is the noisy revealed vector and ``released`` the values returned; using them
    is post-processing of the noisy release (no privacy cost). Sums, counts and histograms
    carry one noise each: sigma is its exact standard deviation (``exact``). Means and
    variances are ratios of noisy sums: sigma propagates *every* noise, the count's included,
    to first order at the released point (``delta-method``). The 95% bounds are proven
    (exact tails, or a union bound over the noises for ratios) either way.
    """
    scale = float(1 << spec.frac_bits)
    privacy = plan.privacy

    def bound(group: NoiseGroup, confidence: Fraction) -> float:
        if group.laplace_scale is not None:
            # Discrete Laplace: P(|Z| >= k) <= 2 exp(-k/t).
            return float(group.laplace_scale) * math.log(2 / float(1 - confidence))
        return dp.error_bound(plan.total_variance(group), confidence)

    def sd(group: NoiseGroup) -> float:
        if group.laplace_scale is not None:
            # Discrete Laplace, P(k) ~ exp(-|k|/t): variance 2p/(1-p)^2 with p = exp(-1/t).
            inv_t = 1 / float(group.laplace_scale)
            return math.sqrt(2 * math.exp(-inv_t)) / -math.expm1(-inv_t) / scale
        return math.sqrt(float(plan.total_variance(group))) / scale

    sigmas: list[float] = []
    bounds: list[float] = []
    kinds: list[str] = []
    if spec.statistic is Statistic.HISTOGRAM:
        # Every bin gets the same noise: one sigma and one error bound (per bin).
        (bins,) = plan.groups
        sigmas.append(sd(bins))
        bounds.append(bound(bins, Fraction(95, 100)) / scale)
        kinds.append(EXACT)
    elif spec.statistic is Statistic.VARIANCE:
        centred, squares, count = plan.groups
        # Three noises, each within its 98.33% bound (union bound: 95% together). The error of
        # (S2 - S1^2/n)/(n-1) is at most (e2 + 2 h e1 + e1^2/n + h^2 eN) / (n - 1 - eN).
        third = Fraction(1, 3)
        e1 = bound(centred, 1 - third * Fraction(5, 100)) / scale
        e2 = bound(squares, 1 - third * Fraction(5, 100)) / scale
        e_n = bound(count, 1 - third * Fraction(5, 100)) / scale
        noisy_n = max(2.0, float(decoded[-1]))
        s1, s2, s_n = sd(centred), sd(squares), sd(count)
        for i, column in enumerate(spec.columns):
            half = (column.hi - column.lo) / 2
            # V = (S2 - S1^2/n)/(n-1): dV/dS2 = 1/(n-1), dV/dS1 = -2 c/(n-1) with c = S1/n the
            # centred mean, dV/dn = (c^2 - V)/(n-1); c from the noisy S1, V the released value.
            c = min(half, abs(float(decoded[i]) / noisy_n))
            v = float(released[i]) if released is not None else half * half
            sigmas.append(
                math.sqrt(s2**2 + (2 * c * s1) ** 2 + ((c * c - v) * s_n) ** 2) / (noisy_n - 1)
            )
            worst = e2 + 2 * half * e1 + e1 * e1 / noisy_n + half * half * e_n
            bounds.append(min(half * half, worst / max(1.0, noisy_n - 1 - e_n)))
            kinds.append(DELTA_METHOD)
    elif spec.statistic is Statistic.MEAN:
        sums, count = plan.groups
        noisy_n = max(1.0, float(decoded[-1]))
        # Both noises within their 97.5% bounds (union bound: 95% together).
        e_sum = bound(sums, Fraction(975, 1000)) / scale
        e_count = bound(count, Fraction(975, 1000)) / scale
        s_sum, s_count = sd(sums), sd(count)
        for i, column in enumerate(spec.columns):
            half = (column.hi - column.lo) / 2
            # m + S/n: dM/dS = 1/n, dM/dn = -(S/n)/n; S/n (the centred mean) from the noisy
            # centred sum, at most h in magnitude.
            c = min(half, abs(float(decoded[i]) / noisy_n))
            sigmas.append(math.sqrt(s_sum**2 + (c * s_count) ** 2) / noisy_n)
            bounds.append((e_sum + half * e_count) / max(1.0, noisy_n - e_count))
            kinds.append(DELTA_METHOD)
    else:
        for group in plan.groups:
            for _ in range(group.start, group.stop):
                sigmas.append(sd(group))
                bounds.append(bound(group, Fraction(95, 100)) / scale)
                kinds.append(EXACT)
    at_delta = privacy.delta if privacy.delta > 0 else 1e-12
    return NoiseOutcome(
        noise=privacy.noise.value,
        epsilon=privacy.epsilon,
        delta=privacy.delta,
        epsilon_spent=float(plan.cost.epsilon(at_delta))
        if privacy.delta > 0
        else float(plan.cost.pure_epsilon_total),
        rho_spent=float(plan.cost.rho),
        sigma=tuple(sigmas),
        error_bound_95=tuple(bounds),
        error_kind=tuple(kinds),
    )


#: float64's relative rounding, doubled (generous): decoding and post-processing in floats.
_FLOAT_EPS = 2.0**-52


def value_tolerances(spec: JobSpec) -> tuple[float, ...]:
    """Worst-case fixed-point error of each released value, one per label, from public
    limits only (the spec's bounds, ``frac_bits`` and row limits). Rounding noise (DP) is
    reported separately (:class:`NoiseOutcome`)."""
    stated = analysis_tolerances(spec)
    if stated is not None:
        return stated
    return _tolerances_of(
        spec.statistic,
        [(b.lo, b.hi) for b in spec.columns],
        spec.frac_bits,
        spec.total_max_rows,
        len(spec.participants),
    )


def _tolerances_of(
    statistic: Statistic,
    bounds: Sequence[tuple[float, float]],
    frac_bits: int,
    total_rows: int,
    parties: int,
) -> tuple[float, ...]:
    half_step = resolution(frac_bits) / 2
    if statistic in (Statistic.COUNT, Statistic.HISTOGRAM):
        return (0.0,)  # counts are exact; one label
    if statistic is Statistic.VARIANCE:
        # (S2 - S1^2/n)/(n-1) with |dS1|, |dS2| <= n half_step, |S1/n| <= h and n/(n-1) <= 2
        # (n >= 2); float rounding of S2 and S1^2/n (each at most n h^2) adds <= 32 u h^2.
        out = []
        for lo, hi in bounds:
            half = (hi - lo) / 2
            out.append(half_step * (2 + 4 * half + 2 * half_step) + 16 * _FLOAT_EPS * half * half)
        return tuple(out)
    if statistic is Statistic.MEAN:
        return tuple(half_step + 4 * _FLOAT_EPS * max(abs(lo), abs(hi)) for lo, hi in bounds)
    if statistic is Statistic.VECTOR_SUM:
        (lo, hi), *_ = bounds
        return (parties * half_step + 2 * _FLOAT_EPS * parties * max(abs(lo), abs(hi)),)
    if statistic is Statistic.SUM:
        return tuple(
            total_rows * (half_step + 2 * _FLOAT_EPS * max(abs(lo), abs(hi))) for lo, hi in bounds
        )
    return (total_rows * half_step,) * max(1, len(bounds))


def tolerances_from_spec_json(spec: Mapping[str, object]) -> tuple[float, ...]:
    """:func:`value_tolerances` of a stored job spec (its canonical JSON); () for training
    jobs or a spec that cannot be read (callers fall back to the single tolerance)."""
    try:
        statistic = Statistic(str(spec["statistic"]))
        if statistic is Statistic.TRAIN:
            return ()
        columns = spec["columns"]
        participants = spec["participants"]
        assert isinstance(columns, list) and isinstance(participants, list)
        if statistic in _ANALYSES:
            return _analysis_tolerances_from_json(statistic, spec, columns)
        return _tolerances_of(
            statistic,
            [(float(c["lo"]), float(c["hi"])) for c in columns],
            int(spec["frac_bits"]),  # type: ignore[call-overload]
            sum(int(p["max_rows"]) for p in participants),
            len(participants),
        )
    except (KeyError, TypeError, ValueError, AssertionError):
        return ()


@dataclass(frozen=True)
class _StoredSpec:
    """The parts of a stored spec that an analysis' tolerances depend on."""

    statistic: Statistic
    columns: tuple[ColumnBound, ...]
    frac_bits: int
    frame: Frame
    quantiles: tuple[float, ...]
    privacy: object


def _analysis_tolerances_from_json(
    statistic: Statistic, spec: Mapping[str, object], columns: list[dict[str, object]]
) -> tuple[float, ...]:
    keys = spec.get("group_by") or []
    assert isinstance(keys, list)
    quantiles = spec.get("quantiles") or []
    assert isinstance(quantiles, list)
    view = _StoredSpec(
        statistic,
        tuple(ColumnBound(str(c["column"]), c["lo"], c["hi"]) for c in columns),  # type: ignore[arg-type]
        int(spec["frac_bits"]),  # type: ignore[call-overload]
        Frame(
            str(spec.get("dataset", "")),
            None,
            tuple(
                GroupKey(
                    str(k["column"]), tuple(k.get("categories", ())), tuple(k.get("edges", ()))
                )
                for k in keys
            ),
        ),
        tuple(float(q) for q in quantiles),
        spec.get("privacy"),
    )
    return analysis_tolerances(view) or ()  # type: ignore[arg-type]


def _tolerance(spec: JobSpec) -> float:
    """The largest stated per-value tolerance (the single number older clients read; NaN
    entries, values with no bound from public information, are left out)."""
    return max((t for t in value_tolerances(spec) if not math.isnan(t)), default=0.0)
