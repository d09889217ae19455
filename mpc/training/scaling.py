"""Standardisation of features and the public per-round input of a training job.

Pure math on public values: the declared bounds, the revealed Gram triangle and the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.errors import QueryError
from mpc.protocol.rounds import KIND_EVAL, KIND_GRAM, KIND_STEP
from mpc.protocol.spec import JobSpec, Standardise
from mpc.ring import FloatVector
from mpc.training.common import _training, shape, triangle

# --- standardisation --------------------------------------------------------------------


@dataclass(frozen=True)
class Scaling:
    """z = (x - mean) / scale per feature."""

    mode: Standardise
    mean: FloatVector
    scale: FloatVector

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode.value, "mean": self.mean.tolist(), "scale": self.scale.tolist()}


def bounds_scaling(spec: JobSpec) -> Scaling:
    """Data-independent scaling: from the declared bounds (BOUNDS) or the identity (NONE)."""
    t = _training(spec)
    feats = shape(spec).features
    if t.standardise is Standardise.BOUNDS:
        mean = np.array([(b.lo + b.hi) / 2 for b in feats])
        half = np.array([(b.hi - b.lo) / 2 for b in feats])
        return Scaling(t.standardise, mean, np.where(half > 0, half, 1.0))
    return Scaling(t.standardise, np.zeros(len(feats)), np.ones(len(feats)))


def _gram_scaling(spec: JobSpec) -> tuple[FloatVector, FloatVector]:
    cols = spec.columns
    mid = np.array([(b.lo + b.hi) / 2 for b in cols])
    half = np.array([(b.hi - b.lo) / 2 for b in cols])
    return mid, np.where(half > 0, half, 1.0)


def raw_gram(spec: JobSpec, scaled: FloatVector) -> FloatVector:
    """The Gram triangle of raw ``[1, x, y]`` from the revealed one of bounds-scaled values."""
    mid, half = _gram_scaling(spec)
    k = mid.size + 1
    t = np.zeros((k, k))
    t[0, 0] = 1.0
    t[0, 1:] = mid
    t[1:, 1:] = np.diag(half)
    full = t.T @ unpack_triangle(scaled, k) @ t
    return np.asarray(full[np.triu_indices(k)], dtype=np.float64)


def moments_scaling(d: int, gram: FloatVector) -> tuple[Scaling, float]:
    """Means and population standard deviations from a revealed Gram triangle; and n."""
    full = unpack_triangle(gram, d + 2)
    n = full[0, 0]
    if n <= 0:
        raise QueryError("no training rows at any party")
    mean = full[0, 1 : d + 1] / n
    var = np.diag(full)[1 : d + 1] / n - mean**2
    scale = np.sqrt(np.maximum(var, 0.0))
    return Scaling(Standardise.SECURE, mean, np.where(scale > 1e-12, scale, 1.0)), float(n)


def unpack_triangle(values: FloatVector, k: int) -> FloatVector:
    full = np.zeros((k, k))
    iu = np.triu_indices(k)
    full[iu] = values[: triangle(k)]
    return full + np.triu(full, 1).T


def to_original(weights: FloatVector, scaling: Scaling) -> tuple[float, FloatVector]:
    """(intercept, coefficients) on the original feature scale."""
    coef = weights[1:] / scaling.scale
    return float(weights[0] - np.dot(coef, scaling.mean)), coef


# --- round inputs ---------------------------------------------------------------------


def round_input(
    kind: int, scaling: Scaling | None = None, weights: FloatVector | None = None
) -> FloatVector:
    parts = [np.array([float(kind)])]
    if scaling is not None and weights is not None:
        parts += [scaling.mean, scaling.scale, weights]
    return np.concatenate(parts).astype(np.float64)


def _parse_input(
    spec: JobSpec, values: FloatVector | None
) -> tuple[int, Scaling | None, FloatVector | None]:
    if values is None or values.size < 1:
        raise QueryError("a training round needs its public round input")
    kind = int(values[0])
    if kind == KIND_GRAM:
        return kind, None, None
    if kind not in (KIND_STEP, KIND_EVAL):
        raise QueryError(f"unknown training round kind {kind}")
    s = shape(spec)
    if values.size != 1 + 2 * s.d + s.p or not np.all(np.isfinite(values)):
        raise QueryError("malformed training round input")
    t = _training(spec)
    if t.standardise is Standardise.SECURE:
        scale = values[1 + s.d : 1 + 2 * s.d]
        if np.any(scale <= 0):
            raise QueryError("malformed training round input: scales must be positive")
        scaling = Scaling(t.standardise, values[1 : 1 + s.d], scale)
    else:
        # Data-independent scaling: the party derives it from the spec it verified.
        scaling = bounds_scaling(spec)
    return kind, scaling, values[1 + 2 * s.d :]
