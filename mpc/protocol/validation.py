"""Validation of job specs and queries: pure structural checks, before anyone touches data.

Every check here depends on the spec (or query) alone, so a refusal is public information:
the coordinator and every party reach the same verdict with the same text.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mpc.errors import QueryError
from mpc.identity import check_party_id
from mpc.protocol.frame import COMPARISONS, MAX_CELLS, Condition, GroupKey, Op
from mpc.protocol.spec import (
    BINNED_STATISTICS,
    DP_STATISTICS,
    FRAME_STATISTICS,
    JOB_ID_PATTERN,
    MAX_CONDITION_NODES,
    MAX_GROUP_KEYS,
    MAX_HISTOGRAM_BINS,
    MAX_LR,
    NAME_PATTERN,
    PROTOCOL_VERSION,
    Method,
    Model,
    NoiseMode,
    PrivacySpec,
    Standardise,
    Statistic,
    TrainingSpec,
)
from mpc.ring import MAX_FRAC_BITS

if TYPE_CHECKING:
    from mpc.protocol.spec import JobSpec


def check_bounds(column: str, lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise QueryError(f"column {column!r}: bounds must be finite numbers")
    if lo > hi:
        raise QueryError(f"column {column!r}: lower bound {lo:g} is above upper bound {hi:g}")


def check_bin_edges(edges: tuple[float, ...]) -> None:
    """Histogram bin edges: at least 2, finite, strictly increasing, at most 2^20 bins."""
    if len(edges) < 2:
        raise QueryError("a histogram needs at least 2 bin edges")
    if len(edges) - 1 > MAX_HISTOGRAM_BINS:
        raise QueryError(f"a histogram has at most {MAX_HISTOGRAM_BINS} bins")
    array = np.asarray(edges, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise QueryError("histogram bin edges must be finite numbers")
    if not np.all(array[1:] > array[:-1]):  # no subtraction: it overflows past DBL_MAX
        raise QueryError("histogram bin edges must be strictly increasing")


def validate_spec(spec: JobSpec) -> None:
    """Raise :class:`QueryError` unless ``spec`` is well formed (pure structural checks)."""
    if spec.protocol_version != PROTOCOL_VERSION:
        raise QueryError(
            f"protocol version {spec.protocol_version} is not supported "
            f"(this build speaks {PROTOCOL_VERSION})"
        )
    if not JOB_ID_PATTERN.match(spec.job_id):
        raise QueryError("job id must be 1-64 characters of letters, digits, '_', '.' or '-'")
    if not isinstance(spec.statistic, Statistic):
        raise QueryError(f"unknown statistic {spec.statistic!r}")
    if not NAME_PATTERN.match(spec.dataset):
        raise QueryError(f"invalid dataset name {spec.dataset!r}")
    if not 0 <= spec.frac_bits <= MAX_FRAC_BITS:
        raise QueryError(f"frac_bits must be between 0 and {MAX_FRAC_BITS}")
    names = [c.column for c in spec.columns]
    if len(set(names)) != len(names):
        raise QueryError("a column is listed twice")
    for bound in spec.columns:
        check_bounds(bound.column, bound.lo, bound.hi)
    if spec.statistic in (Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE) and not spec.columns:
        raise QueryError(f"{spec.statistic.value} needs at least one column")
    if spec.statistic in BINNED_STATISTICS:
        what = spec.statistic.value
        if len(spec.columns) != 1:
            raise QueryError(f"{what} needs exactly one column")
        check_bin_edges(spec.bin_edges)
        bound = spec.columns[0]
        if (bound.lo, bound.hi) != (spec.bin_edges[0], spec.bin_edges[-1]):
            raise QueryError(f"a {what}'s column bounds must be its first and last bin edges")
    elif spec.bin_edges:
        raise QueryError("bin_edges are only for histogram and quantile")
    validate_frame(spec)
    if spec.statistic is Statistic.VECTOR_SUM:
        if len(spec.columns) != 1 or spec.vector_length < 1:
            raise QueryError("vector_sum needs exactly one bounds entry and a vector length")
    elif spec.vector_length:
        raise QueryError("vector_length is only for vector_sum")
    if spec.privacy is not None:
        validate_privacy(spec.privacy, spec.statistic, len(spec.participants))
    if (spec.statistic is Statistic.TRAIN) != (spec.training is not None):
        raise QueryError("a training spec goes with statistic 'train', and only with it")
    if spec.training is not None:
        validate_training(spec.training, names, spec.privacy)
    ids = [p.party_id for p in spec.participants]
    if len(ids) < 2:
        raise QueryError("a job needs at least two participating parties")
    if len(set(ids)) != len(ids):
        raise QueryError("a party is listed twice among the participants")
    if ids != sorted(ids):
        raise QueryError("participants must be listed in sorted order")
    for participant in spec.participants:
        check_party_id(participant.party_id)
        if participant.max_rows < 0:
            raise QueryError("max_rows must be non-negative")


def check_condition(condition: Condition) -> None:
    """A ``where`` condition: at most MAX_CONDITION_NODES nodes, finite constants, non-empty
    and duplicate-free category sets."""
    nodes = [condition]
    seen = 0
    while nodes:
        node = nodes.pop()
        seen += 1
        if seen > MAX_CONDITION_NODES:
            raise QueryError(f"a where condition has at most {MAX_CONDITION_NODES} parts")
        if node.op in (Op.AND, Op.OR):
            if not node.children:
                raise QueryError(f"an empty '{node.op.value}' in a where condition")
            nodes.extend(node.children)
            continue
        if not NAME_PATTERN.match(node.column):
            raise QueryError(f"invalid column name {node.column!r} in a where condition")
        if node.op is Op.IN:
            check_categories(node.column, node.categories)
        elif node.op not in COMPARISONS:
            raise QueryError(f"unknown operator {node.op.value!r} in a where condition")
        elif not math.isfinite(node.value):
            raise QueryError(f"column {node.column!r}: compare with a finite number")


def check_categories(column: str, categories: tuple[str, ...]) -> None:
    if not categories:
        raise QueryError(f"column {column!r}: list at least one category")
    if len(set(categories)) != len(categories):
        raise QueryError(f"column {column!r}: a category is listed twice")
    for category in categories:
        if not isinstance(category, str) or not 0 < len(category) <= 128:
            raise QueryError(f"column {column!r}: categories are 1-128 characters")


def check_frame(
    statistic: Statistic, where: Condition | None, group_by: tuple[GroupKey, ...]
) -> None:
    """Structural checks of ``where`` and ``group_by`` (a query's and a spec's alike; the
    parties check columns and categories against their own schemas)."""
    if (where is not None or group_by) and statistic not in FRAME_STATISTICS:
        raise QueryError(f"{statistic.value} takes no where or group_by")
    if where is not None:
        check_condition(where)
    if len(group_by) > MAX_GROUP_KEYS:
        raise QueryError(f"group by at most {MAX_GROUP_KEYS} columns")
    keys = [k.column for k in group_by]
    if len(set(keys)) != len(keys):
        raise QueryError("a group_by column is listed twice")
    for key in group_by:
        if not NAME_PATTERN.match(key.column):
            raise QueryError(f"invalid group_by column name {key.column!r}")
        if bool(key.categories) == bool(key.edges):
            raise QueryError(f"group_by column {key.column!r}: give categories or bin edges")
        if key.categories:
            check_categories(key.column, key.categories)
        else:
            check_bin_edges(key.edges)


def validate_frame(spec: JobSpec) -> None:
    """``where``, ``group_by`` and ``quantiles``: only where the statistic takes them."""
    check_frame(spec.statistic, spec.where, spec.group_by)
    cells = spec.frame.cells * (len(spec.bin_edges) - 1 if spec.bin_edges else 1)
    if cells > MAX_CELLS:
        raise QueryError(f"a job has at most {MAX_CELLS} cells (groups times bins)")
    if spec.statistic is Statistic.CONTINGENCY and (len(spec.group_by) != 2 or spec.columns):
        raise QueryError("a contingency table groups by exactly two columns and reads no other")
    if spec.statistic is Statistic.TTEST:
        if len(spec.group_by) != 1 or not spec.columns:
            raise QueryError("a t-test needs columns and one group_by key with exactly 2 groups")
        key = spec.group_by[0]
        if key.size != 2:
            pick = f"{key.column}=A,B" if key.categories else f"{key.column}:E0,E1,E2"
            raise QueryError(
                f"a t-test needs one group_by key with exactly 2 groups; {key.column!r} has "
                f"{key.size}: pick two ({pick})"
            )
    if spec.statistic in (Statistic.COVARIANCE, Statistic.CORRELATION) and len(spec.columns) < 2:
        raise QueryError(f"{spec.statistic.value} needs at least two columns")
    if spec.statistic is Statistic.QUANTILE:
        if not spec.quantiles:
            raise QueryError("quantile needs at least one probability")
        if not all(0 < q < 1 for q in spec.quantiles):
            raise QueryError("quantile probabilities must be between 0 and 1 (exclusive)")
    elif spec.quantiles:
        raise QueryError("quantiles are only for the quantile statistic")


def validate_privacy(privacy: PrivacySpec, statistic: Statistic, parties: int) -> None:
    """Refuse privacy parameters that cannot be honoured, before anyone touches data."""
    if not isinstance(privacy.noise, NoiseMode) or privacy.noise is NoiseMode.NONE:
        raise QueryError("a privacy spec needs noise 'central' or 'distributed'")
    if not (math.isfinite(privacy.epsilon) and privacy.epsilon > 0):
        raise QueryError("epsilon must be a positive finite number")
    if not (math.isfinite(privacy.delta) and 0 <= privacy.delta < 1):
        raise QueryError("delta must be in [0, 1)")
    if statistic not in DP_STATISTICS:
        raise QueryError(
            f"{statistic.value} has no record-level sensitivity: differential privacy is "
            f"available for {', '.join(sorted(s.value for s in DP_STATISTICS))}"
        )
    if privacy.noise is NoiseMode.DISTRIBUTED:
        if privacy.delta == 0:
            raise QueryError(
                "distributed noise uses the discrete Gaussian and needs delta > 0 "
                "(pure epsilon-DP is available with --noise central)"
            )
        if not 0 <= privacy.colluders < parties:
            raise QueryError(
                f"colluders must be between 0 and {parties - 1} for {parties} parties "
                "(distributed noise needs at least one honest party)"
            )


def validate_training(
    training: TrainingSpec, columns: list[str], privacy: PrivacySpec | None
) -> None:
    """Refuse training parameters that cannot be honoured (structural checks only)."""
    if not isinstance(training.model, Model):
        raise QueryError(f"unknown model {training.model!r} (linear or logistic)")
    if not isinstance(training.method, Method):
        raise QueryError(f"unknown method {training.method!r} (gd, newton or closed_form)")
    if not isinstance(training.standardise, Standardise):
        raise QueryError(f"unknown standardisation {training.standardise!r}")
    if len(columns) < 2 or columns[-1] != training.label:
        raise QueryError("a training job needs feature columns followed by its label column")
    if training.label in columns[:-1]:
        raise QueryError(f"the label {training.label!r} is also listed as a feature")
    if not 1 <= training.rounds <= 100_000:
        raise QueryError("rounds must be between 1 and 100000")
    if not 0 <= training.start_round <= 1_000_000:
        raise QueryError("start_round must be between 0 and 1000000")
    numbers = {
        "lr": training.lr,
        "l2": training.l2,
        "clip": training.clip,
        "batch_rate": training.batch_rate,
        "tol": training.tol,
        "holdout": training.holdout,
    }
    for name, value in numbers.items():
        if not (math.isfinite(value) and value >= 0):
            raise QueryError(f"{name} must be a non-negative finite number")
    if not 0 <= training.lr <= MAX_LR:
        raise QueryError(f"lr must be at most {MAX_LR:g} (0: an automatic, safe step)")
    if training.batch_rate > 1:
        raise QueryError("batch_rate must be in (0, 1] (0: every row every round)")
    if training.holdout >= 1:
        raise QueryError("holdout must be in [0, 1)")
    if training.method is Method.CLOSED_FORM and training.model is not Model.LINEAR:
        raise QueryError("the closed form is for linear regression only")
    if training.method is Method.CLOSED_FORM and training.batch_rate:
        raise QueryError("the closed form uses every row: drop batch_rate")
    if privacy is not None:
        if training.method is not Method.GD:
            raise QueryError("differentially private training uses gradient descent (method gd)")
        if training.standardise is Standardise.SECURE:
            raise QueryError(
                "differentially private training cannot standardise with secure moments "
                "(they would be released without noise): use standardise 'bounds'"
            )
        if training.clip <= 0:
            raise QueryError("differentially private training needs a clip norm (--clip)")


__all__ = [
    "check_bin_edges",
    "check_bounds",
    "check_categories",
    "check_condition",
    "check_frame",
    "validate_frame",
    "validate_privacy",
    "validate_spec",
    "validate_training",
]
