"""Quantiles (and the median) of one column from a fine histogram over public bin edges.

Exact (no DP): each party sends its count per bin (per cell with ``group_by``), encoded like
counts; the sum is the pooled histogram. A quantile is computed as ``numpy.quantile`` does
(linear interpolation between the order statistics at rank ``(n - 1) p``), each order
statistic placed inside the bin that holds it by interpolation on its rank: the result is off
by at most the width of the bins holding those order statistics, the stated ``error``.

With DP: a hierarchical histogram. Bins are padded to ``BRANCH^L`` leaves and the vector holds
the count of every node of the tree, level by level from the root (per cell). One row changes
one count per level: with ``L + 1`` levels, L1 = ``(L + 1) 2^f`` and L2 = ``sqrt(L + 1) 2^f``,
one noise group. The count below each bin edge (a prefix) is the sum of at most
``(BRANCH - 1) L`` noisy nodes of the tree decomposition; the prefixes are made monotone and
clamped to ``[0, N]`` (N the noisy root: post-processing), and the quantile is the value where
this cumulative curve reaches ``p N``, interpolated linearly inside a bin. The stated error:
``rank_error``, a 95% bound on the error of the prefix and of ``p N`` in rows (from the
public noise scale), translated into values through the released curve, plus the width of
the bins involved.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from mpc import dp
from mpc.protocol.frame import Frame, GroupKey, Request
from mpc.protocol.spec import JobSpec, Statistic
from mpc.ring import Component, FloatVector, RingVector
from mpc.stats.analyses._common import cell_names, count_entries, l2_norm, noise_variance
from mpc.stats.base import Layout, LocalData, NoiseGroupShape, StatisticDef

#: Branching factor of the DP tree (4 keeps ``(BRANCH - 1) L (L + 1)``, the prefix noise
#: variance in units of a one-level variance, near its minimum for up to 2^20 bins).
BRANCH = 4
#: Multiple of the noise standard deviation in the stated 95% bound (the sub-Gaussian tail
#: bound of :func:`mpc.dp.error_bound`: ``sqrt(2 ln 40)``).
Z95 = math.sqrt(2 * math.log(40))
GROUP = "quantile tree"


def tree_depth(bins: int) -> int:
    """``L``: the smallest depth with ``BRANCH^L >= bins`` (the tree has ``L + 1`` levels)."""
    depth = 0
    while BRANCH**depth < bins:
        depth += 1
    return depth


def tree_nodes(bins: int) -> int:
    return sum(BRANCH**level for level in range(tree_depth(bins) + 1))


def _bins(spec: JobSpec) -> int:
    return len(spec.bin_edges) - 1


def _per_cell(spec: JobSpec) -> int:
    return tree_nodes(_bins(spec)) if spec.privacy is not None else _bins(spec)


def _output_length(spec: JobSpec) -> int:
    return spec.frame.cells * _per_cell(spec)


def tree_counts(leaves: np.ndarray) -> np.ndarray:
    """``[cells, nodes]``: every level's node counts, root first, of ``[cells, bins]``."""
    cells, bins = leaves.shape
    depth = tree_depth(bins)
    level = np.zeros((cells, BRANCH**depth), dtype=np.int64)
    level[:, :bins] = leaves
    levels = [level]
    for _ in range(depth):
        level = level.reshape(cells, -1, BRANCH).sum(axis=2)
        levels.append(level)
    return np.concatenate(levels[::-1], axis=1)


def _local(spec: JobSpec, data: LocalData, round_input: FloatVector | None = None) -> RingVector:
    column = spec.columns[0].column
    bins = _bins(spec)
    key = GroupKey(column, edges=spec.bin_edges)
    frame = Frame(spec.dataset, spec.where, (*spec.group_by, key))
    agg = data.aggregate(Request(frame, (), spec.frac_bits))
    leaves = np.asarray(agg.counts, dtype=np.int64).reshape(spec.frame.cells, bins)
    counts = tree_counts(leaves) if spec.privacy is not None else leaves
    return count_entries(counts.ravel(), spec.frac_bits)


def exact_quantiles(
    counts: FloatVector, edges: FloatVector, probabilities: FloatVector
) -> tuple[FloatVector, FloatVector]:
    """``(values, errors)`` from exact bin counts (see the module docstring); NaN without
    rows."""
    counts = np.maximum(np.rint(np.nan_to_num(counts)), 0.0)
    n = float(counts.sum())
    if n < 1:
        nan = np.full(probabilities.size, math.nan)
        return nan, nan.copy()
    cum = np.cumsum(counts)
    with np.errstate(over="ignore"):  # edges spanning more than DBL_MAX: an infinite width
        widths = np.diff(edges)
    position = (n - 1) * probabilities
    low = np.floor(position)
    frac = position - low
    high = np.minimum(low + 1, n - 1)

    def order_statistic(rank: FloatVector) -> tuple[FloatVector, np.ndarray]:
        b = np.minimum(np.searchsorted(cum, rank, side="right"), counts.size - 1)
        before = cum[b] - counts[b]
        inside = (rank - before + 0.5) / np.maximum(counts[b], 1.0)
        return edges[b] + widths[b] * np.clip(inside, 0.0, 1.0), b

    x_low, b_low = order_statistic(low)
    x_high, b_high = order_statistic(high)
    values = x_low + frac * (x_high - x_low)
    errors = np.maximum(widths[b_low], widths[b_high])
    return np.asarray(values, dtype=np.float64), np.asarray(errors, dtype=np.float64)


def tree_prefixes(nodes: FloatVector, bins: int) -> FloatVector:
    """Estimated counts below each of the ``bins + 1`` edges from one cell's noisy tree
    (root first), each the sum of at most ``(BRANCH - 1) L`` nodes."""
    depth = tree_depth(bins)
    leaves = BRANCH**depth
    edges = np.arange(bins + 1)
    inner = np.minimum(edges, leaves - 1)
    prefix = np.zeros(bins + 1)
    offset = 1
    for level in range(1, depth + 1):
        size = BRANCH**level
        values = nodes[offset : offset + size].reshape(-1, BRANCH)
        exclusive = (np.cumsum(values, axis=1) - values).ravel()
        prefix += exclusive[inner // BRANCH ** (depth - level)]
        offset += size
    return np.where(edges >= leaves, nodes[0], prefix)


def _inverse(curve: FloatVector, edges: FloatVector, targets: FloatVector) -> FloatVector:
    """The value where the monotone cumulative ``curve`` (at ``edges``) reaches ``targets``,
    linear inside a bin."""
    bins = edges.size - 1
    j = np.clip(np.searchsorted(curve, targets, side="left"), 1, bins)
    below, above = curve[j - 1], curve[j]
    with np.errstate(all="ignore"):
        inside = np.where(above > below, (targets - below) / (above - below), 1.0)
    value = edges[j - 1] + (edges[j] - edges[j - 1]) * np.clip(inside, 0.0, 1.0)
    return np.asarray(value, dtype=np.float64)


def noisy_quantiles(
    nodes: FloatVector, edges: FloatVector, probabilities: FloatVector, node_sd: float
) -> tuple[FloatVector, FloatVector, FloatVector]:
    """``(values, errors, rank_errors)`` from one cell's noisy tree (data units)."""
    bins = edges.size - 1
    nodes = np.nan_to_num(np.asarray(nodes, dtype=np.float64))
    total = max(0.0, float(nodes[0]))
    prefix = tree_prefixes(nodes, bins)
    curve = np.clip(np.maximum.accumulate(prefix), 0.0, total)
    curve[0], curve[-1] = 0.0, total
    count = probabilities.size
    if total < 1:
        nan = np.full(count, math.nan)
        return nan, nan.copy(), nan.copy()
    targets = probabilities * total
    prefix_sd = node_sd * math.sqrt((BRANCH - 1) * tree_depth(bins))
    rank_error = Z95 * (prefix_sd + probabilities * node_sd) + 1.0  # +1: rank convention
    values = _inverse(curve, edges, targets)
    low = _inverse(curve, edges, np.clip(targets - rank_error, 0.0, total))
    high = _inverse(curve, edges, np.clip(targets + rank_error, 0.0, total))
    with np.errstate(over="ignore"):  # edges spanning more than DBL_MAX: an infinite width
        widths = np.diff(edges)
    first = np.clip(np.searchsorted(edges, low, side="right") - 1, 0, bins - 1)
    last = np.clip(np.searchsorted(edges, high, side="left"), first + 1, bins)
    widest = np.array([widths[a:b].max() for a, b in zip(first, last, strict=True)])
    errors = np.maximum(values - low, high - values) + widest
    return values, errors, np.asarray(rank_error, dtype=np.float64)


def _finish(spec: JobSpec, revealed: FloatVector) -> FloatVector:
    edges = np.asarray(spec.bin_edges, dtype=np.float64)
    probabilities = np.asarray(spec.quantiles, dtype=np.float64)
    per = _per_cell(spec)
    out = []
    if spec.privacy is None:
        for cell in np.asarray(revealed, dtype=np.float64).reshape(-1, per):
            out.append(np.column_stack(exact_quantiles(cell, edges, probabilities)))
    else:
        variance = noise_variance(spec, GROUP, _groups(spec))
        node_sd = math.sqrt(variance) if variance >= 0 else math.nan
        for cell in np.asarray(revealed, dtype=np.float64).reshape(-1, per):
            out.append(np.column_stack(noisy_quantiles(cell, edges, probabilities, node_sd)))
    return np.concatenate([o.ravel() for o in out])


def _groups(spec: JobSpec) -> list[NoiseGroupShape]:
    # One row adds one count at each level of its cell's tree.
    one = dp.count_sensitivity(spec.frac_bits)
    levels = tree_depth(_bins(spec)) + 1
    return [(GROUP, 0, _output_length(spec), l2_norm([one] * levels), one * levels, Fraction(1))]


def _value_columns(spec: JobSpec) -> list[str]:
    return ["value", "error", "rank_error"] if spec.privacy is not None else ["value", "error"]


def _labels(spec: JobSpec) -> list[str]:
    return [
        f"{cell}{spec.columns[0].column} q{p:g} {name}"
        for cell in cell_names(spec)
        for p in spec.quantiles
        for name in _value_columns(spec)
    ]


def _layout(spec: JobSpec) -> Layout:
    return Layout(
        index=[(*cell, f"{p:g}") for cell in spec.frame.cell_labels() for p in spec.quantiles],
        index_names=[*(key.column for key in spec.group_by), "probability"],
        columns=_value_columns(spec),
    )


def _components(spec: JobSpec) -> list[Component]:
    name = "tree node count" if spec.privacy is not None else "bin count"
    return [Component(name, 1.0)]


REGISTRY: dict[Statistic, StatisticDef] = {
    Statistic.QUANTILE: StatisticDef(
        name=Statistic.QUANTILE,
        output_length=_output_length,
        components=_components,
        local=_local,
        finish=_finish,
        labels=_labels,
        dp_groups=_groups,
        layout=_layout,
    ),
}

__all__ = [
    "BRANCH",
    "REGISTRY",
    "exact_quantiles",
    "noisy_quantiles",
    "tree_counts",
    "tree_depth",
    "tree_nodes",
    "tree_prefixes",
]
