"""Secure training of linear and logistic regression: the pure math of every round.

A training job is a session of rounds over the ordinary secure sum. In each round the
coordinator sends the public ``round_input`` (the round kind, the standardisation and the
current model); every party computes one local vector on its own rows; only the sum over all
parties is revealed. Round kinds and the vector each party contributes (``p = d + 1``
coefficients, intercept first):

* ``KIND_GRAM``: the upper triangle of ``B^T B`` with ``B = [1, x, y]`` over the party's
  training rows (clamped to the declared bounds). It holds the row count, the sums and sums of
  squares of every feature (secure standardisation) and ``X^T X``, ``X^T y``, ``y^T y`` (the
  closed-form ridge solution). Never with differential privacy.
* ``KIND_STEP``: ``[sum of clipped per-example gradients (p), row count, loss sum]``, then for
  Newton the upper triangle of ``A^T D A`` (``A = [1, z]``, ``D`` the loss curvature).
* ``KIND_EVAL``: ``[n, loss, correct|SSE, sum y, sum y^2]`` over the training rows, then the
  same over the hold-out rows. Never with differential privacy.

Parties enforce the bounds that make the headroom proof and the DP sensitivity hold: values
clamped to the declared bounds, standardised values clamped to ``+/-Z_MAX``, per-example
gradients clipped to L2 norm ``C`` (``SAFETY_CLIP`` when no clip is given) and per-example
losses to ``[0, loss_bound]``. Rows are sampled per round by Poisson sampling from the OS
CSPRNG when ``batch_rate`` is set. The hold-out split is deterministic: a row is held out when
a 64-bit hash of its raw values (splitmix64, salted with the dataset and label names) falls
below ``holdout * 2^64`` - the same split in every round and in a resumed job, no state kept.

Modules: :mod:`~mpc.training.common` (public dimensions and bounds),
:mod:`~mpc.training.scaling` (standardisation, round inputs), :mod:`~mpc.training.local` (the
party's batched round computation), :mod:`~mpc.training.solve` (coordinator math) and
:mod:`~mpc.training.prediction` (applying a model). This package only re-exports them.
"""

from __future__ import annotations

from mpc.protocol.rounds import KIND_EVAL, KIND_GRAM, KIND_STEP
from mpc.training.common import (
    AUTO_LR_CAP,
    DP_LOSS_BOUND,
    EVAL_LENGTH,
    LOGISTIC_LOSS_BOUND,
    RESIDUAL_FACTOR,
    SAFETY_CLIP,
    Z_MAX,
    Shape,
    _max_abs,
    _training,
    clip_norm,
    components,
    design_norm,
    feature_bound,
    gram_length,
    loss_bound,
    residual_bound,
    shape,
    step_length,
    triangle,
)
from mpc.training.local import (
    _FINITE,
    TRAIN_BATCH_ROWS,
    _encode_sum,
    _splitmix,
    clipped_gradients,
    design,
    holdout_mask,
    per_example,
    poisson_mask,
    train_local,
)
from mpc.training.prediction import feature_matrix, predict, predict_class, predict_rows
from mpc.training.scaling import (
    Scaling,
    _gram_scaling,
    _parse_input,
    bounds_scaling,
    moments_scaling,
    raw_gram,
    round_input,
    to_original,
    unpack_triangle,
)
from mpc.training.solve import (
    _standardised,
    auto_step,
    clamp_warnings,
    closed_form,
    curvature_bound,
    metrics,
    newton_step,
    objective_gradient,
    objective_value,
    penalty_mask,
)

__all__ = [
    "AUTO_LR_CAP",
    "DP_LOSS_BOUND",
    "EVAL_LENGTH",
    "KIND_EVAL",
    "KIND_GRAM",
    "KIND_STEP",
    "LOGISTIC_LOSS_BOUND",
    "RESIDUAL_FACTOR",
    "SAFETY_CLIP",
    "TRAIN_BATCH_ROWS",
    "Z_MAX",
    "_FINITE",
    "Scaling",
    "Shape",
    "_encode_sum",
    "_gram_scaling",
    "_max_abs",
    "_parse_input",
    "_splitmix",
    "_standardised",
    "_training",
    "auto_step",
    "bounds_scaling",
    "clamp_warnings",
    "clip_norm",
    "clipped_gradients",
    "closed_form",
    "components",
    "curvature_bound",
    "design",
    "design_norm",
    "feature_bound",
    "feature_matrix",
    "gram_length",
    "holdout_mask",
    "loss_bound",
    "metrics",
    "moments_scaling",
    "newton_step",
    "objective_gradient",
    "objective_value",
    "penalty_mask",
    "per_example",
    "poisson_mask",
    "predict",
    "predict_class",
    "predict_rows",
    "raw_gram",
    "residual_bound",
    "round_input",
    "shape",
    "step_length",
    "to_original",
    "train_local",
    "triangle",
    "unpack_triangle",
]
