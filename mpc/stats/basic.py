"""The basic statistics -- sum, count, mean, variance, histogram -- over frames.

Each is computed from the per-cell aggregates of one frame (:mod:`mpc.protocol.frame`): the
rows matching the job's ``where``, split into cells by its ``group_by`` keys (a histogram's
bins are one more key, the fastest). One secure vector carries every cell.

**Layout of the secure vector.** An ungrouped statistic's vector is a list of *segments*
(for a mean of k columns: the k sums, then the count). A grouped vector keeps the segments in
the same order, each repeated across all cells, cell-major: entry ``(cell g, j)`` of a
segment of length L sits at ``offset + g * L + j``. With one cell (no ``group_by``) the
vector is exactly the ungrouped one, word for word. Every DP noise group is one segment
across all cells (contiguous), and since a row lies in exactly one cell, its sensitivity is
one cell's.

An exact (non-DP) sum with a ``where`` or ``group_by`` carries one more segment, the cell row
counts, so the coordinator can suppress small cells; it is not part of the result.

The finished result has ``cells x columns`` values, row-major by cell (see :func:`layout`).
A cell without rows gives NaN for means and variances (never a failed job).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.errors import QueryError
from mpc.protocol.frame import Factor, Frame, GroupKey, Request, Term
from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.base import Layout, LocalData, StatisticDef

_MAX_BOUND = (1 << 63) - 1


def framed(spec: JobSpec) -> bool:
    """Does the job filter or group its rows?"""
    return spec.where is not None or bool(spec.group_by)


def frame_of(spec: JobSpec) -> Frame:
    """The frame a statistic aggregates: a histogram's bins are the last (fastest) key."""
    frame = spec.frame
    if spec.statistic is Statistic.HISTOGRAM:
        column = spec.columns[0].column
        return Frame(
            frame.dataset, frame.where, (*frame.keys, GroupKey(column, edges=spec.bin_edges))
        )
    return frame


def cells(spec: JobSpec) -> int:
    """Cells of the secure vector (a histogram: groups times bins)."""
    return frame_of(spec).cells


def segments(spec: JobSpec) -> list[int]:
    """Lengths of one cell's segments, in vector order."""
    k = len(spec.columns)
    statistic = spec.statistic
    if statistic is Statistic.SUM:
        return [k, 1] if framed(spec) and spec.privacy is None else [k]
    if statistic is Statistic.MEAN:
        return [k, 1]
    if statistic is Statistic.VARIANCE:
        return [k, k, 1]
    if statistic in (Statistic.COUNT, Statistic.HISTOGRAM):
        return [1]
    raise QueryError(f"{statistic.value} is not a basic statistic")


def output_length(spec: JobSpec) -> int:
    return cells(spec) * sum(segments(spec))


def cell_blocks(spec: JobSpec, vector: FloatVector) -> FloatVector:
    """The vector as one row per cell holding that cell's ungrouped block (cells x block)."""
    g = cells(spec)
    parts, offset = [], 0
    for length in segments(spec):
        parts.append(np.asarray(vector[offset : offset + g * length]).reshape(g, length))
        offset += g * length
    return np.hstack(parts) if parts else np.zeros((g, 0))


def cell_counts(spec: JobSpec, decoded: FloatVector) -> FloatVector | None:
    """Row counts per result row of a framed job's decoded vector (small-cell suppression);
    None when the vector carries none."""
    if spec.statistic in (Statistic.COUNT, Statistic.HISTOGRAM):
        return np.asarray(decoded, dtype=np.float64)
    if spec.statistic in (Statistic.MEAN, Statistic.VARIANCE) or (
        spec.statistic is Statistic.SUM and framed(spec) and spec.privacy is None
    ):
        return cell_blocks(spec, decoded)[:, -1]
    return None


def layout(spec: JobSpec) -> Layout:
    """Rows: the cells (named by their key columns); columns: the statistic's labels."""
    frame = frame_of(spec)
    names = [k.column for k in frame.keys]
    columns = ["count"] if spec.statistic is Statistic.HISTOGRAM else _labels(spec)
    return Layout(index=frame.cell_labels(), index_names=names, columns=columns)


# --- local computation -----------------------------------------------------------------


def _cap(bound: int) -> int:
    return min(bound, _MAX_BOUND)


def _plain_terms(spec: JobSpec) -> list[Term]:
    """Each column clamped to its bounds (bound ``ceil(max(|lo|, |hi|) 2^f)``: never binding
    on a clamped value, so the sums are today's clamped sums word for word)."""
    f = spec.frac_bits
    return [
        Term(
            (Factor(b.column, b.lo, b.hi),),
            _cap(dp.sum_sensitivity(Fraction(b.lo), Fraction(b.hi), f)),
        )
        for b in spec.columns
    ]


def _centred_terms(spec: JobSpec) -> list[Term]:
    """``x - m`` per column, each encoding clamped to ``ceil((hi - lo) / 2 * 2^f)``."""
    out = []
    for b in spec.columns:
        half = int(np.ceil(np.ldexp((b.hi - b.lo) / 2, spec.frac_bits)))
        out.append(Term((Factor(b.column, b.lo, b.hi, centred=True),), _cap(half)))
    return out


def _square_terms(spec: JobSpec) -> list[Term]:
    """``(x - m)^2`` per column, clamped to ``fixed_point_bound(((hi - lo) / 2)^2)``."""
    out = []
    for b in spec.columns:
        half = (Fraction(b.hi) - Fraction(b.lo)) / 2
        factor = Factor(b.column, b.lo, b.hi, centred=True)
        out.append(Term((factor, factor), _cap(dp.fixed_point_bound(half * half, spec.frac_bits))))
    return out


def _moment_terms(spec: JobSpec) -> list[Term]:
    f = spec.frac_bits
    return [
        Term(
            (Factor(b.column, b.lo, b.hi, centred=True),),
            _cap(dp.centred_sum_sensitivity(Fraction(b.lo), Fraction(b.hi), f)),
        )
        for b in spec.columns
    ]


def _vector(spec: JobSpec, data: LocalData, terms: list[Term], with_count: bool) -> RingVector:
    """The terms' per-cell sums (one segment per ``len(spec.columns)`` terms, cell-major),
    then the cell counts encoded like counts (``count << frac_bits``)."""
    request = Request(frame_of(spec), tuple(terms), spec.frac_bits)
    aggregates = data.aggregate(request)
    k = max(1, len(spec.columns))
    parts = [
        np.ascontiguousarray(aggregates.sums[start : start + k].T).reshape(-1)
        for start in range(0, len(terms), k)
    ]
    if with_count:
        counts = aggregates.counts.astype(np.uint64)
        parts.append(np.left_shift(counts, np.uint64(spec.frac_bits)))
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    return np.concatenate(parts).astype(np.uint64)


def _sum_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    return _vector(spec, data, _plain_terms(spec), framed(spec) and spec.privacy is None)


def _count_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    # Zero-bound terms only make the listed columns read: rows missing one are not counted.
    terms = [Term((Factor(b.column, b.lo, b.hi),), 0) for b in spec.columns]
    request = Request(frame_of(spec), tuple(terms), spec.frac_bits)
    if not request.columns():
        # Reads no column at all: every row counts (the reference engine sees no rows
        # without a column, so ask the table for its row count).
        counts = np.array([data.table(spec.dataset, []).rows], dtype=np.uint64)
    else:
        counts = data.aggregate(request).counts.astype(np.uint64)
    return np.left_shift(counts, np.uint64(spec.frac_bits))


def _mean_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    terms = _centred_terms(spec) if spec.privacy else _plain_terms(spec)
    return _vector(spec, data, terms, True)


def _variance_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    """``[sum(x - m), sum((x - m)^2), count]`` per cell, ``m = (lo + hi) / 2``; every encoded
    term clamped to its integer bound so the DP sensitivities hold exactly."""
    return _vector(spec, data, [*_moment_terms(spec), *_square_terms(spec)], True)


def _histogram_local(
    spec: JobSpec, data: LocalData, round_input: FloatVector | None = None
) -> RingVector:
    """Counts per (group, bin), encoded like counts. Bins are ``[e_i, e_{i+1})``, the last
    closed; values outside the edges are clamped into the end bins."""
    return _count_local(spec, data, round_input)


# --- public post-processing ---------------------------------------------------------------


def _labels(spec: JobSpec) -> list[str]:
    if spec.statistic is Statistic.COUNT:
        return ["count"]
    if spec.statistic is Statistic.HISTOGRAM:
        return [spec.columns[0].column]
    return [c.column for c in spec.columns]


def _sum_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    k = len(spec.columns)
    return np.asarray(cell_blocks(spec, revealed)[:, :k].reshape(-1), dtype=np.float64)


def _count_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    # A noisy count is released as the nearest non-negative integer (post-processing).
    return np.maximum(np.rint(revealed), 0.0) if spec.privacy is not None else revealed


def _mean_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    k = len(spec.columns)
    blocks = cell_blocks(spec, revealed)
    if spec.privacy is not None:
        # m + (S + Z_S) / max(1, n + Z_N), clamped to [lo, hi]: post-processing of released
        # values (mpc.dp.noisy_mean), so it costs no privacy.
        out = [
            float(
                dp.noisy_mean(
                    Fraction(float(s)), round(float(row[-1])), Fraction(b.lo), Fraction(b.hi)
                )
            )
            for row in blocks
            for s, b in zip(row[:k], spec.columns, strict=True)
        ]
        return np.array(out, dtype=np.float64)
    counts = blocks[:, -1:]
    if not framed(spec) and counts[0, 0] <= 0:
        raise QueryError("mean is undefined: no rows at any party")
    with np.errstate(all="ignore"):
        means = np.where(counts > 0, blocks[:, :k] / np.where(counts > 0, counts, 1), np.nan)
    return np.asarray(means.reshape(-1), dtype=np.float64)


def _variance_finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    """Sample variance ``(S2 - S1^2 / n) / (n - 1)`` per cell and column, clamped to
    ``[0, h^2]`` (``h = (hi - lo) / 2``). With DP the count is the noisy one rounded, at
    least 2 (post-processing); exact cells with fewer than 2 rows give NaN (an ungrouped,
    unfiltered job refuses, as it always has)."""
    k = len(spec.columns)
    blocks = cell_blocks(spec, revealed)
    if spec.privacy is not None:
        n = np.maximum(2.0, np.rint(blocks[:, -1:]))
    else:
        n = blocks[:, -1:]
        if not framed(spec) and n[0, 0] < 2:
            raise QueryError("variance is undefined: fewer than 2 rows at all parties together")
    halves = np.array([(b.hi - b.lo) / 2 for b in spec.columns], dtype=np.float64)
    s1, s2 = blocks[:, :k], blocks[:, k : 2 * k]
    with np.errstate(all="ignore"):
        safe = np.where(n >= 2, n, 2.0)
        raw = (s2 - s1 * s1 / safe) / (safe - 1)
        out = np.minimum(halves * halves, np.maximum(0.0, raw))
        out = np.where(n >= 2, out, np.nan)
    return np.asarray(out.reshape(-1), dtype=np.float64)


def _bound_components(spec: JobSpec) -> list[Component]:
    return [Component(f"column {b.column!r}", max(abs(b.lo), abs(b.hi))) for b in spec.columns]


def _moment_components(spec: JobSpec) -> list[Component]:
    halves = [(b.column, (b.hi - b.lo) / 2) for b in spec.columns]
    return [
        *(Component(f"column {c!r} (centred)", h) for c, h in halves),
        *(Component(f"column {c!r} (centred square)", h * h) for c, h in halves),
        Component("count", 1.0),
    ]


# The headroom components are per *kind* of entry: every cell's entry of a kind is a sum of
# at most total_max_rows rows, each adding at most the component's per-row bound, so the
# proof is the same for one cell or many (a row is in one cell only, which only helps).
REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.SUM: StatisticDef(
        name=Statistic.SUM,
        output_length=output_length,
        components=lambda spec: [
            *_bound_components(spec),
            *([Component("count", 1.0)] if framed(spec) and spec.privacy is None else []),
        ],
        local=_sum_local,
        finish=_sum_finish,
        labels=_labels,
        layout=layout,
    ),
    Statistic.COUNT: StatisticDef(
        name=Statistic.COUNT,
        output_length=output_length,
        components=lambda spec: [Component("count", 1.0)],
        local=_count_local,
        finish=_count_finish,
        labels=_labels,
        layout=layout,
    ),
    Statistic.MEAN: StatisticDef(
        name=Statistic.MEAN,
        output_length=output_length,
        components=lambda spec: [*_bound_components(spec), Component("count", 1.0)],
        local=_mean_local,
        finish=_mean_finish,
        labels=_labels,
        layout=layout,
    ),
    Statistic.VARIANCE: StatisticDef(
        name=Statistic.VARIANCE,
        output_length=output_length,
        components=_moment_components,
        local=_variance_local,
        finish=_variance_finish,
        labels=_labels,
        layout=layout,
    ),
    # One value per (group, bin); one label (the column) for the whole vector, since 2^20 bin
    # labels would not fit a result header. Bin i is [bin_edges[i], bin_edges[i + 1]).
    Statistic.HISTOGRAM: StatisticDef(
        name=Statistic.HISTOGRAM,
        output_length=output_length,
        components=lambda spec: [Component("bin count", 1.0)],
        local=_histogram_local,
        finish=_count_finish,
        labels=_labels,
        layout=layout,
    ),
}

__all__ = [
    "REGISTRY",
    "cell_blocks",
    "cell_counts",
    "cells",
    "frame_of",
    "framed",
    "layout",
    "output_length",
    "segments",
]
