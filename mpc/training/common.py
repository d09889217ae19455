"""Public dimensions and bounds of a training job (spec only, no data).

The bounds here make the headroom proof and the DP sensitivity of every training round hold:
the per-example gradient clip, the per-example loss clamp and the largest design-row entry.
See :mod:`mpc.training` for the rounds themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mpc.errors import QueryError
from mpc.protocol.spec import ColumnBound, JobSpec, Method, Model, Standardise, TrainingSpec
from mpc.ring import Component

#: Ceiling of the per-example gradient clip when the job sets none. The clip actually used
#: is derived from the declared bounds (``clip_norm``): the largest design-row norm times the
#: largest residual of a sane model; a no-op for sane models, it makes the headroom proof
#: possible (a logistic gradient never exceeds it).
SAFETY_CLIP = 1e6
#: Per-example loss bound with DP (part of the sensitivity); without DP it is derived from
#: the declared bounds (``loss_bound``).
DP_LOSS_BOUND = 10.0
#: A linear model's implicit clip allows residuals up to this many times the label's largest
#: magnitude (predictions beyond three times the label range only come from a diverging model).
RESIDUAL_FACTOR = 4.0
#: Per-example logistic loss bound without DP (a row misclassified with margin 100).
LOGISTIC_LOSS_BOUND = 100.0
#: The automatic step (``lr`` 0 in the spec) never exceeds this.
AUTO_LR_CAP = 1.0
#: Standardised features are clamped to +/- this many standard deviations (secure moments).
Z_MAX = 100.0
EVAL_LENGTH = 10


@dataclass(frozen=True)
class Shape:
    """Public dimensions of a training job."""

    features: tuple[ColumnBound, ...]
    label: ColumnBound

    @property
    def d(self) -> int:
        return len(self.features)

    @property
    def p(self) -> int:
        return len(self.features) + 1

    @property
    def label_max(self) -> float:
        return max(abs(self.label.lo), abs(self.label.hi))


def shape(spec: JobSpec) -> Shape:
    if spec.training is None:
        raise QueryError("not a training job")
    return Shape(spec.columns[:-1], spec.columns[-1])


def triangle(k: int) -> int:
    return k * (k + 1) // 2


def step_length(spec: JobSpec) -> int:
    t = _training(spec)
    p = shape(spec).p
    return p + 2 + (triangle(p) if t.method is Method.NEWTON else 0)


def gram_length(spec: JobSpec) -> int:
    return triangle(shape(spec).d + 2)


def design_norm(spec: JobSpec) -> float:
    """Largest L2 norm of a standardised design row ``[1, z]`` (public: spec only)."""
    t = _training(spec)
    feats = shape(spec).features
    if t.standardise is Standardise.SECURE:
        per = [Z_MAX] * len(feats)
    elif t.standardise is Standardise.BOUNDS:
        per = [1.0] * len(feats)
    else:
        per = [_max_abs(b) for b in feats]
    return math.sqrt(1.0 + sum(v * v for v in per))


def residual_bound(spec: JobSpec) -> float:
    """Largest per-example residual ``d loss / d margin`` of a sane model."""
    if _training(spec).model is Model.LOGISTIC:
        return 1.0  # |sigmoid - y| <= 1 for any model
    return max(RESIDUAL_FACTOR * shape(spec).label_max, 1e-9)


def clip_norm(spec: JobSpec) -> float:
    """The per-example gradient clip: the job's, else derived from the declared bounds.

    A logistic gradient ``a (p - y)`` never exceeds ``|a|``, so the derived clip never binds;
    a linear one binds only for residuals beyond ``RESIDUAL_FACTOR`` times the largest label.
    """
    t = _training(spec)
    if t.clip > 0:
        return t.clip
    return min(SAFETY_CLIP, design_norm(spec) * residual_bound(spec))


def loss_bound(spec: JobSpec) -> float:
    """Per-example loss clamp: DP_LOSS_BOUND with DP (sensitivity), else derived (reporting).

    Without DP it is the loss at the residual bound (linear) or a margin of 100 (logistic):
    a sane model never reaches it, so a mean loss near it means a diverged model.
    """
    if spec.privacy is not None:
        return DP_LOSS_BOUND
    if _training(spec).model is Model.LOGISTIC:
        return LOGISTIC_LOSS_BOUND
    return 0.5 * residual_bound(spec) ** 2


def _training(spec: JobSpec) -> TrainingSpec:
    if spec.training is None:
        raise QueryError("not a training job")
    return spec.training


def _max_abs(bound: ColumnBound) -> float:
    return max(abs(bound.lo), abs(bound.hi))


def feature_bound(spec: JobSpec) -> float:
    """Largest |entry| of a standardised design row ``[1, z]``."""
    t = _training(spec)
    if t.standardise is Standardise.SECURE:
        return Z_MAX
    if t.standardise is Standardise.BOUNDS:
        return 1.0
    return max([1.0, *(_max_abs(b) for b in shape(spec).features)])


def components(spec: JobSpec) -> list[Component]:
    """What one row can add to any entry of any round's vector (for the headroom proof)."""
    t = _training(spec)
    s = shape(spec)
    lb = loss_bound(spec)
    label = f"narrow the label's bounds ({s.label.column!r}) to at most +/-{{}}"
    clip_now = "" if t.clip > 0 else f" (now derived from the bounds: {clip_norm(spec):.6g})"
    out = [
        Component(
            "per-example gradient (clip norm)",
            clip_norm(spec),
            knob=f"set --clip to at most {{}}{clip_now}",
        ),
        Component("count", 1.0, knob=""),
        Component(
            "per-example loss",
            2 * lb,
            knob="" if spec.privacy is not None or t.model is Model.LOGISTIC else label,
            knob_scale=RESIDUAL_FACTOR**2,
            knob_power=2.0,
        ),
    ]
    if t.method is Method.NEWTON:
        curv = 0.25 if t.model is Model.LOGISTIC else 1.0
        out.append(
            Component(
                "Hessian entry (standardised features)",
                curv * feature_bound(spec) ** 2,
                knob="--standardise bounds or --method gd",
            )
        )
    if spec.privacy is None:
        out.append(Component("Gram entry (bounds-scaled)", 1.0, knob=""))
        out.append(
            Component("label square (evaluation)", s.label_max**2, knob=label, knob_power=2.0)
        )
    return out
