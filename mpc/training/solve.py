"""Coordinator-side math of training: objective, steps, closed form, metrics.

Everything here works on revealed (public) sums only.
"""

from __future__ import annotations

import math

import numpy as np

from mpc.errors import QueryError
from mpc.protocol.spec import JobSpec, Method, Model, Standardise
from mpc.ring import FloatVector
from mpc.training.common import AUTO_LR_CAP, Z_MAX, _training, design_norm, shape
from mpc.training.scaling import Scaling, unpack_triangle


def penalty_mask(p: int) -> FloatVector:
    mask = np.ones(p)
    mask[0] = 0.0  # no penalty on the intercept
    return mask


def objective_gradient(g_sum: FloatVector, n: float, l2: float, w: FloatVector) -> FloatVector:
    return np.asarray(g_sum / n + l2 * penalty_mask(w.size) * w, dtype=np.float64)


def objective_value(loss_sum: float, n: float, l2: float, w: FloatVector) -> float:
    return float(loss_sum / n + 0.5 * l2 * float(np.dot(w[1:], w[1:])))


def newton_step(grad: FloatVector, hess_tri: FloatVector, n: float, l2: float) -> FloatVector:
    p = grad.size
    h = unpack_triangle(hess_tri, p) / n + l2 * np.diag(penalty_mask(p))
    return np.asarray(np.linalg.solve(h + 1e-12 * np.eye(p), grad), dtype=np.float64)


def _standardised(
    gram: FloatVector, d: int, scaling: Scaling
) -> tuple[FloatVector, FloatVector, float]:
    """``(A^T A, A^T y, n)`` of the standardised design ``A`` from the raw Gram triangle."""
    full = unpack_triangle(gram, d + 2)
    n = full[0, 0]
    if n <= 0:
        raise QueryError("no training rows at any party")
    # A = X1 M with X1 = [1, x] and M mapping [1, x] to [1, (x - mean) / scale].
    m = np.zeros((d + 1, d + 1))
    m[0, 0] = 1.0
    m[0, 1:] = -scaling.mean / scaling.scale
    m[1:, 1:] = np.diag(1.0 / scaling.scale)
    return m.T @ full[: d + 1, : d + 1] @ m, m.T @ full[: d + 1, d + 1], float(n)


def closed_form(
    gram: FloatVector, d: int, scaling: Scaling, l2: float
) -> tuple[FloatVector, float]:
    """Ridge in the standardised space from the raw Gram of ``[1, x, y]``: (weights, n)."""
    ata, aty, n = _standardised(gram, d, scaling)
    system = ata / n + l2 * np.diag(penalty_mask(d + 1))
    return np.asarray(np.linalg.solve(system, aty / n), dtype=np.float64), float(n)


def curvature_bound(spec: JobSpec, scaling: Scaling, gram: FloatVector | None) -> float:
    """An upper bound on the largest eigenvalue of the objective's Hessian (public math).

    With the round-0 Gram it is the largest eigenvalue of the standardised design's
    ``A^T A / n`` (times 1/4 for logistic, whose curvature is at most 1/4) plus ``l2``;
    without it, the data-independent ``max |a|^2`` (every ``a a^T`` is at most that).
    """
    t = _training(spec)
    if gram is not None:
        ata, _, n = _standardised(gram, shape(spec).d, scaling)
        lam = float(np.max(np.linalg.eigvalsh(ata / n)))
    else:
        lam = design_norm(spec) ** 2
    curv = 0.25 if t.model is Model.LOGISTIC else 1.0
    return curv * max(lam, 1e-12) + t.l2


def auto_step(spec: JobSpec, scaling: Scaling, gram: FloatVector | None) -> float:
    """The gradient step: the spec's ``lr``, or (``lr`` 0) ``min(AUTO_LR_CAP, 1 / L)``.

    ``L`` bounds the curvature (``curvature_bound``), so the step is below ``2 / L``: gradient
    descent on these convex objectives then lowers the loss every round.
    """
    t = _training(spec)
    if t.lr > 0:
        return t.lr
    return min(AUTO_LR_CAP, 1.0 / curvature_bound(spec, scaling, gram))


def clamp_warnings(spec: JobSpec, scaling: Scaling, gram: FloatVector) -> list[str]:
    """Features whose standardised values can pass +/-Z_MAX (the clamp may change the model).

    From public information only: the declared bounds, the secure moments and ``n``
    (Samuelson: no value lies more than ``sqrt(n - 1)`` standard deviations from the mean).
    """
    t = _training(spec)
    if t.standardise is not Standardise.SECURE or t.method is Method.CLOSED_FORM:
        return []
    n = unpack_triangle(gram, shape(spec).d + 2)[0, 0]
    out = []
    for j, b in enumerate(shape(spec).features):
        m, sd = float(scaling.mean[j]), float(scaling.scale[j])
        reach = max(abs(b.lo - m), abs(b.hi - m)) / sd
        reach = min(reach, math.sqrt(max(n - 1.0, 0.0)))
        if reach > Z_MAX:
            out.append(
                f"feature {b.column!r}: standardised values can reach +/-{reach:.4g} "
                f"(bounds [{b.lo:g}, {b.hi:g}], mean {m:.4g}, sd {sd:.4g}) and are clamped at "
                f"+/-{Z_MAX:g}, which changes its coefficient if such rows exist (a rare "
                "category or an outlier); --standardise bounds avoids the clamp"
            )
    return out


def metrics(model: Model, values: FloatVector) -> dict[str, float | None]:
    """Evaluation metrics from a revealed KIND_EVAL vector."""
    out: dict[str, float | None] = {}
    for prefix, part in (("train", values[:5]), ("holdout", values[5:10])):
        n, loss, quality, sy, syy = (float(v) for v in part)
        out[f"{prefix}_rows"] = round(n)
        if n < 0.5:
            continue
        out[f"{prefix}_loss"] = loss / n
        if model is Model.LOGISTIC:
            out[f"{prefix}_accuracy"] = quality / n
        else:
            sst = syy - sy * sy / n
            out[f"{prefix}_rmse"] = math.sqrt(max(quality, 0.0) / n)
            out[f"{prefix}_r2"] = 1.0 - quality / sst if sst > 0 else None
    return out
