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
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mpc.errors import PrivacyBudgetError, QueryError
from mpc.protocol.rounds import KIND_EVAL, KIND_GRAM, KIND_STEP
from mpc.protocol.spec import ColumnBound, JobSpec, Method, Model, Standardise, TrainingSpec
from mpc.ring import Component, FloatVector, RingVector, encode_saturating, saturate

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


# --- the party's local statistic --------------------------------------------------------


class _LocalTable:
    def __init__(self, x: FloatVector, y: FloatVector, holdout: npt.NDArray[np.bool_]) -> None:
        self.x, self.y, self.holdout = x, y, holdout
        # The standardised design of the training rows for the job's (fixed) scaling: built
        # in the first gradient round, reused by every later one.
        self._design: tuple[bytes, FloatVector] | None = None

    def train_design(self, scaling: Scaling) -> FloatVector:
        key = scaling.mean.tobytes() + scaling.scale.tobytes() + scaling.mode.value.encode()
        if self._design is None or self._design[0] != key:
            self._design = (key, design(self.x[~self.holdout], scaling))
        return self._design[1]


_CACHE: dict[tuple[int, str], tuple[object, _LocalTable]] = {}
_CACHE_LOCK = threading.Lock()


def _splitmix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    h = h + np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def holdout_mask(raw: FloatVector, fraction: float, salt: str) -> npt.NDArray[np.bool_]:
    """Deterministic per-row split: hash of the row's raw values below ``fraction``."""
    rows = raw.shape[0]
    if fraction <= 0:
        return np.zeros(rows, dtype=bool)
    seed = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")
    h = np.full(rows, seed, dtype=np.uint64)
    bits = np.ascontiguousarray(raw, dtype=np.float64).view(np.uint64)
    for j in range(bits.shape[1]):
        h = _splitmix(h ^ bits[:, j])
    return np.asarray(h < np.uint64(int(fraction * 2.0**64)), dtype=bool)


def _local_table(spec: JobSpec, data: object) -> _LocalTable:
    s = shape(spec)
    names = [b.column for b in spec.columns]
    table = data.table(spec.dataset, names)  # type: ignore[attr-defined]
    key = (id(table), spec.job_id)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is table:
            return hit[1]
    raw = (
        np.column_stack([table.column(n) for n in names])
        if table.rows
        else np.zeros((0, len(names)))
    )
    t = _training(spec)
    mask = holdout_mask(raw, t.holdout, f"{spec.dataset}\x00{t.label}")
    x = (
        np.column_stack([np.clip(raw[:, j], b.lo, b.hi) for j, b in enumerate(s.features)])
        if table.rows
        else np.zeros((0, s.d))
    )
    y = np.clip(raw[:, -1], s.label.lo, s.label.hi) if table.rows else np.zeros(0)
    local = _LocalTable(x, y, mask)
    with _CACHE_LOCK:
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (table, local)
    return local


def poisson_mask(rows: int, rate: float) -> npt.NDArray[np.bool_]:
    """Each row independently with probability ``rate``, from the OS CSPRNG."""
    if rate >= 1.0:
        return np.ones(rows, dtype=bool)
    words = np.frombuffer(os.urandom(8 * rows), dtype=np.uint64)
    return np.asarray(words < np.uint64(int(rate * 2.0**64)), dtype=bool)


def design(x: FloatVector, scaling: Scaling) -> FloatVector:
    """The design ``[1, z]`` of raw rows; finite whatever the scaling (it saturates)."""
    with np.errstate(all="ignore"):
        z = (x - scaling.mean) / scaling.scale
    if scaling.mode is Standardise.SECURE:
        z = saturate(z, -Z_MAX, Z_MAX)
    else:
        z = saturate(z, -_FINITE, _FINITE)
    return np.column_stack([np.ones(x.shape[0]), z])


#: Per-row intermediate values saturate here: finite, and squares still finite.
_FINITE = 1e150


def per_example(
    model: Model, a: FloatVector, y: FloatVector, w: FloatVector
) -> tuple[FloatVector, FloatVector, FloatVector]:
    """(residual d loss / d z, loss, curvature) per row; finite for any finite inputs.

    Every intermediate saturates instead of overflowing (the margin ``z`` at +/-1e150, the
    residual likewise), so no row can turn a round into an error: a data-dependent error is
    an oracle. The saturation points are far beyond anything a sane model reaches.
    """
    with np.errstate(all="ignore"):
        z = saturate(a @ w, -_FINITE, _FINITE)
        if model is Model.LOGISTIC:
            prob = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
            loss = np.logaddexp(0.0, z) - y * z
            return prob - y, saturate(loss, 0.0, np.inf), prob * (1.0 - prob)
        r = saturate(z - y, -_FINITE, _FINITE)
        return r, 0.5 * r * r, np.ones_like(r)


def clipped_gradients(a: FloatVector, r: FloatVector, clip: float) -> FloatVector:
    """Per-row gradients ``a * r`` scaled to L2 norm at most ``clip`` (overflow-free).

    The norm is taken of the row divided by its largest entry, so it cannot overflow; the
    result is finite with every entry at most ``clip`` in magnitude.
    """
    with np.errstate(all="ignore"):
        grads = saturate(a * r[:, None], -np.finfo(np.float64).max, np.finfo(np.float64).max)
        peak = np.max(np.abs(grads), axis=1) if grads.size else np.zeros(grads.shape[0])
        safe = np.where(peak > 0, peak, 1.0)
        unit = grads / safe[:, None]
        unit_norm = np.sqrt(np.einsum("ij,ij->i", unit, unit))
        factor = np.minimum(1.0, (clip / safe) / np.maximum(unit_norm, 1e-300))
        return np.asarray(saturate(grads * factor[:, None], -clip, clip), dtype=np.float64)


def _encode_sum(values: npt.ArrayLike, frac_bits: int) -> RingVector:
    return np.atleast_1d(encode_saturating(values, frac_bits))


def train_local(spec: JobSpec, data: object, round_input: FloatVector | None) -> RingVector:
    """The party's vector for one training round (see the module docstring)."""
    t = _training(spec)
    kind, scaling, w = _parse_input(spec, round_input)
    if spec.privacy is not None and kind != KIND_STEP:
        raise PrivacyBudgetError(
            "refuses a training round that would release statistics without noise "
            "(only noised gradient rounds are allowed in a differentially private job)"
        )
    local = _local_table(spec, data)
    f = spec.frac_bits
    train = ~local.holdout
    if kind == KIND_GRAM:
        # On bounds-scaled values in [-1, 1] (per-row entries <= 1, whatever the units);
        # the coordinator maps the Gram back to raw units (raw_gram).
        mid, half = _gram_scaling(spec)
        raw = np.column_stack([local.x[train], local.y[train]])
        with np.errstate(all="ignore"):
            scaled = saturate((raw - mid) / half, -1.0, 1.0)
        b = np.column_stack([np.ones(int(train.sum())), scaled])
        gram = b.T @ b
        return _encode_sum(gram[np.triu_indices(b.shape[1])], f)
    assert scaling is not None and w is not None
    if kind == KIND_EVAL:
        return np.concatenate(
            [
                _eval_part(t.model, design(local.x[m], scaling), local.y[m], w, spec, f)
                for m in (train, local.holdout)
            ]
        )
    a = local.train_design(scaling)
    y = local.y[train]
    if t.batch_rate > 0:
        sampled = poisson_mask(a.shape[0], t.batch_rate)
        a, y = a[sampled], y[sampled]
    r, loss, curvature = per_example(t.model, a, y, w)
    grads = clipped_gradients(a, r, clip_norm(spec))
    losses = np.clip(loss, 0.0, loss_bound(spec))
    if spec.privacy is not None:
        # Encode every clipped per-example gradient, then add in the ring: one row moves the
        # sum by at most the encoded clip norm (with the sqrt(p)/2 rounding slack), exactly
        # the sensitivity the noise is calibrated to.
        grad_sum = encode_saturating(grads, f).sum(axis=0, dtype=np.uint64)
        loss_sum = encode_saturating(losses, f).sum(dtype=np.uint64, keepdims=True)
    else:
        # No sensitivity to honour: sum in float64 and encode once (less rounding, and the
        # round's cost is one pass over the rows). The same headroom bound holds for the sum.
        grad_sum = _encode_sum(grads.sum(axis=0), f)
        loss_sum = _encode_sum(losses.sum(), f)
    parts = [grad_sum, np.array([np.uint64(a.shape[0] << f)], dtype=np.uint64), loss_sum]
    if t.method is Method.NEWTON:
        hess = (a * curvature[:, None]).T @ a
        parts.append(_encode_sum(hess[np.triu_indices(a.shape[1])], f))
    return np.concatenate(parts).astype(np.uint64)


def _eval_part(
    model: Model, a: FloatVector, y: FloatVector, w: FloatVector, spec: JobSpec, f: int
) -> RingVector:
    _, loss, _ = per_example(model, a, y, w)
    with np.errstate(all="ignore"):
        z = saturate(a @ w, -_FINITE, _FINITE)
    if model is Model.LOGISTIC:
        quality = ((z >= 0).astype(np.float64) == y).astype(np.float64)
    else:
        quality = np.minimum((z - y) ** 2, 2 * loss_bound(spec))
    values = [
        float(y.size),
        float(np.clip(loss, 0.0, loss_bound(spec)).sum()),
        float(quality.sum()),
        float(y.sum()),
        float((y * y).sum()),
    ]
    return _encode_sum(values, f)


# --- coordinator-side math ---------------------------------------------------------------


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


def predict(
    model_json: dict[str, object], x: FloatVector
) -> tuple[FloatVector, FloatVector | None]:
    """Apply a saved model to raw feature rows: (prediction, probability or None)."""
    orig = model_json["original_scale"]
    assert isinstance(orig, dict)
    bounds = model_json.get("bounds")
    if isinstance(bounds, list):
        lo = np.array([float(b[0]) for b in bounds])
        hi = np.array([float(b[1]) for b in bounds])
        x = np.clip(x, lo, hi)
    z = x @ np.asarray(orig["coefficients"], dtype=np.float64) + float(orig["intercept"])
    if model_json["model"] == Model.LOGISTIC.value:
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))
        return (prob >= 0.5).astype(np.float64), prob
    return z, None


__all__ = [
    "AUTO_LR_CAP",
    "DP_LOSS_BOUND",
    "EVAL_LENGTH",
    "KIND_EVAL",
    "KIND_GRAM",
    "KIND_STEP",
    "SAFETY_CLIP",
    "Z_MAX",
    "Scaling",
    "auto_step",
    "clamp_warnings",
    "closed_form",
    "components",
    "curvature_bound",
    "holdout_mask",
    "loss_bound",
    "metrics",
    "newton_step",
    "poisson_mask",
    "predict",
    "raw_gram",
    "train_local",
]
