"""Registry of local statistics and their public post-processing.

Every job is *local statistic -> secure sum -> public post-processing*. An entry here says,
for one statistic: how long its vector is, what one row can add to each entry (for the
headroom proof), how a party computes it from its rows (clamping to the declared bounds
itself: bounds are enforced by the code, not trusted; encoding saturates, so no row can make
the computation fail), and what to do with the revealed sum.
Adding a statistic is adding an entry, not a protocol.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.errors import QueryError
from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector, encode_saturating
from mpc.stats.analyses import REGISTRY as _ANALYSES
from mpc.stats.base import Layout, LocalData, StatisticDef, default_layout
from mpc.training import components as _train_components
from mpc.training import shape as _train_shape
from mpc.training import step_length as _train_step_length
from mpc.training import train_local as _train_local


def _clamped_sums(spec: JobSpec, data: LocalData) -> tuple[list[np.uint64], int]:
    table = data.table(spec.dataset, [c.column for c in spec.columns])
    sums = [
        # Encode every clamped value, then add in the ring: the sum of rounded values is exact
        # and its sensitivity is exactly the encoded bound.
        encode_saturating(np.clip(table.column(b.column), b.lo, b.hi), spec.frac_bits).sum(
            dtype=np.uint64
        )
        for b in spec.columns
    ]
    return sums, table.rows


def _count_entry(rows: int, frac_bits: int) -> np.uint64:
    return np.uint64(rows << frac_bits)


def _sum_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    sums, _ = _clamped_sums(spec, data)
    return np.array(sums, dtype=np.uint64)


def _count_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    table = data.table(spec.dataset, [c.column for c in spec.columns])
    return np.array([_count_entry(table.rows, spec.frac_bits)], dtype=np.uint64)


def _centred_sums(spec: JobSpec, data: LocalData) -> tuple[list[np.uint64], int]:
    """Sums of ``x - m`` with ``m = (lo + hi) / 2``, each encoded term clamped to the integer
    bound ``ceil((hi - lo) / 2 * 2^f)`` so the DP sensitivity holds exactly."""
    table = data.table(spec.dataset, [c.column for c in spec.columns])
    sums = []
    for b in spec.columns:
        half = int(np.ceil(np.ldexp((b.hi - b.lo) / 2, spec.frac_bits)))
        centred = np.clip(table.column(b.column), b.lo, b.hi) - (b.lo + b.hi) / 2
        encoded = np.clip(encode_saturating(centred, spec.frac_bits).view(np.int64), -half, half)
        sums.append(encoded.view(np.uint64).sum(dtype=np.uint64))
    return sums, table.rows


def _mean_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    sums, rows = (_centred_sums if spec.privacy else _clamped_sums)(spec, data)
    return np.array([*sums, _count_entry(rows, spec.frac_bits)], dtype=np.uint64)


def _mean_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    if spec.privacy is not None:
        # m + (S + Z_S) / max(1, n + Z_N), clamped to [lo, hi]: post-processing of released
        # values (mpc.dp.noisy_mean), so it costs no privacy.
        noisy_count = round(float(revealed[-1]))
        return np.array(
            [
                float(
                    dp.noisy_mean(Fraction(float(s)), noisy_count, Fraction(b.lo), Fraction(b.hi))
                )
                for s, b in zip(revealed[:-1], spec.columns, strict=True)
            ],
            dtype=np.float64,
        )
    count = revealed[-1]
    if count <= 0:
        raise QueryError("mean is undefined: no rows at any party")
    return np.asarray(revealed[:-1] / count, dtype=np.float64)


def _centred_moments(spec: JobSpec, data: LocalData) -> RingVector:
    """``[sum(x - m) per column, sum((x - m)^2) per column, count]``, ``m = (lo + hi) / 2``.

    Values are clamped to ``[lo, hi]`` first, then encoded; every encoded term is clamped to
    its integer bound (``mpc.dp.centred_sum_sensitivity`` for ``x - m``,
    ``mpc.dp.fixed_point_bound(((hi - lo) / 2)^2)`` for its square) so the DP sensitivities
    hold exactly, whatever the rounding.
    """
    table = data.table(spec.dataset, [c.column for c in spec.columns])
    f = spec.frac_bits
    firsts, seconds = [], []
    for b in spec.columns:
        half = (Fraction(b.hi) - Fraction(b.lo)) / 2
        bound_1 = dp.centred_sum_sensitivity(Fraction(b.lo), Fraction(b.hi), f)
        bound_2 = dp.fixed_point_bound(half * half, f)
        centred = np.clip(table.column(b.column), b.lo, b.hi) - (b.lo + b.hi) / 2
        first = np.clip(encode_saturating(centred, f).view(np.int64), -bound_1, bound_1)
        second = np.clip(encode_saturating(centred * centred, f).view(np.int64), 0, bound_2)
        firsts.append(first.view(np.uint64).sum(dtype=np.uint64))
        seconds.append(second.view(np.uint64).sum(dtype=np.uint64))
    return np.array([*firsts, *seconds, _count_entry(table.rows, f)], dtype=np.uint64)


def _variance_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    return _centred_moments(spec, data)


def _variance_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    """Sample variance ``(S2 - S1^2 / n) / (n - 1)`` per column, clamped to ``[0, h^2]``
    (``h = (hi - lo) / 2``, the largest variance of values in ``[lo, hi]``).

    With DP the count is the noisy one rounded, at least 2; everything is post-processing of
    the released (noisy) sums, so it costs no privacy.
    """
    k = len(spec.columns)
    if spec.privacy is not None:
        n = float(max(2, round(float(revealed[-1]))))
    else:
        n = float(revealed[-1])
        if n < 2:
            raise QueryError("variance is undefined: fewer than 2 rows at all parties together")
    out = []
    for i, b in enumerate(spec.columns):
        s1, s2 = float(revealed[i]), float(revealed[k + i])
        half = (b.hi - b.lo) / 2
        out.append(min(half * half, max(0.0, (s2 - s1 * s1 / n) / (n - 1))))
    return np.array(out, dtype=np.float64)


def _histogram_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    """Counts per bin, encoded like counts (``count << frac_bits``).

    Bins are ``[e_i, e_{i+1})``, the last one closed (as ``numpy.histogram``); values below the
    first edge or above the last are clamped into the first/last bin.
    """
    column = spec.columns[0].column
    table = data.table(spec.dataset, [column])
    edges = np.asarray(spec.bin_edges, dtype=np.float64)
    bins = edges.size - 1
    values = np.clip(table.column(column), edges[0], edges[-1])
    index = np.minimum(np.searchsorted(edges, values, side="right") - 1, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.uint64)
    return np.left_shift(counts, np.uint64(spec.frac_bits))


def _histogram_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    # Noisy counts are released as the nearest non-negative integers (post-processing).
    return np.maximum(np.rint(revealed), 0.0) if spec.privacy is not None else revealed


def _moment_components(spec: JobSpec) -> list[Component]:
    halves = [(b.column, (b.hi - b.lo) / 2) for b in spec.columns]
    return [
        *(Component(f"column {c!r} (centred)", h) for c, h in halves),
        *(Component(f"column {c!r} (centred square)", h * h) for c, h in halves),
        Component("count", 1.0),
    ]


class EncodedVector:
    """A vector clamped and encoded one chunk at a time, as the party streams it.

    The same words as ``encode(np.clip(values, lo, hi), frac_bits)``, but the whole encoded
    vector and its temporaries never exist at once (peak per party ~1x the input instead of
    ~3x), and the first chunk leaves before the last one is encoded.
    """

    def __init__(self, values: FloatVector, lo: float, hi: float, frac_bits: int) -> None:
        self._values = values
        self._lo = lo
        self._hi = hi
        self._frac_bits = frac_bits

    @property
    def size(self) -> int:
        return int(self._values.size)

    def chunk(self, start: int, stop: int) -> RingVector:
        values = np.clip(self._values[start:stop], self._lo, self._hi)
        return encode_saturating(values, self._frac_bits)

    def full(self) -> RingVector:
        return self.chunk(0, self.size)


def _vector_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> EncodedVector:
    vector = data.vector(spec.dataset)
    if vector.size != spec.vector_length:
        raise QueryError(
            f"dataset {spec.dataset!r} has length {vector.size}, the job expects "
            f"{spec.vector_length}"
        )
    bound = spec.columns[0]
    return EncodedVector(vector, bound.lo, bound.hi, spec.frac_bits)


def _bound_components(spec: JobSpec) -> list[Component]:
    return [Component(f"column {b.column!r}", max(abs(b.lo), abs(b.hi))) for b in spec.columns]


def _identity(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    return revealed


def _count_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    # A noisy count is released as the nearest non-negative integer (post-processing).
    return np.maximum(np.rint(revealed), 0.0) if spec.privacy is not None else revealed


REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.SUM: StatisticDef(
        name=Statistic.SUM,
        output_length=lambda spec: len(spec.columns),
        components=_bound_components,
        local=_sum_local,
        finish=_identity,
        labels=lambda spec: [c.column for c in spec.columns],
    ),
    Statistic.COUNT: StatisticDef(
        name=Statistic.COUNT,
        output_length=lambda spec: 1,
        components=lambda spec: [Component("count", 1.0)],
        local=_count_local,
        finish=_count_finish,
        labels=lambda spec: ["count"],
    ),
    Statistic.MEAN: StatisticDef(
        name=Statistic.MEAN,
        output_length=lambda spec: len(spec.columns) + 1,
        components=lambda spec: [*_bound_components(spec), Component("count", 1.0)],
        local=_mean_local,
        finish=_mean_finish,
        labels=lambda spec: [c.column for c in spec.columns],
    ),
    Statistic.VARIANCE: StatisticDef(
        name=Statistic.VARIANCE,
        output_length=lambda spec: 2 * len(spec.columns) + 1,
        components=_moment_components,
        local=_variance_local,
        finish=_variance_finish,
        labels=lambda spec: [c.column for c in spec.columns],
    ),
    # One value per bin; one label (the column) for the whole vector, since 2^20 bin labels
    # would not fit a result header. Bin i is [bin_edges[i], bin_edges[i + 1]).
    Statistic.HISTOGRAM: StatisticDef(
        name=Statistic.HISTOGRAM,
        output_length=lambda spec: len(spec.bin_edges) - 1,
        components=lambda spec: [Component("bin count", 1.0)],
        local=_histogram_local,
        finish=_histogram_finish,
        labels=lambda spec: [spec.columns[0].column],
    ),
    Statistic.VECTOR_SUM: StatisticDef(
        name=Statistic.VECTOR_SUM,
        output_length=lambda spec: spec.vector_length,
        components=lambda spec: _bound_components(spec)[:1],
        local=_vector_local,
        finish=_identity,
        labels=lambda spec: ["value"],
    ),
    # A training job: one vector per round, its kind set by the public round input
    # (mpc.training). The nominal length is a gradient step's; the coordinator passes each
    # round's length to collect_round.
    Statistic.TRAIN: StatisticDef(
        name=Statistic.TRAIN,
        output_length=_train_step_length,
        components=_train_components,
        local=_train_local,
        finish=_identity,
        labels=lambda spec: ["intercept", *(b.column for b in _train_shape(spec).features)],
    ),
}


REGISTRY.update(_ANALYSES)


def definition(statistic: Statistic) -> StatisticDef:
    try:
        return REGISTRY[statistic]
    except KeyError:
        raise QueryError(f"statistic {statistic.value!r} is not available in this build") from None


__all__ = [
    "REGISTRY",
    "EncodedVector",
    "Layout",
    "LocalData",
    "StatisticDef",
    "default_layout",
    "definition",
]
