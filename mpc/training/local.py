"""The party's local vector for one training round, streamed over its rows in batches.

Rows come from ``data.batches`` (the :class:`mpc.stats.base.LocalData` protocol), so a large
table never needs to be in memory at once: every round accumulates its sums (gradient, Gram,
loss, evaluation counts) batch by batch. Every per-row quantity depends only on the row itself
(the hold-out hash, the clamps, the Poisson sample), so the result does not depend on the batch
size: the DP sums are added in the ring (exact, associative), the others in float64.

Security: what leaves the party is only the vector (masked by the secure sum). Every error
raised here depends only on the signed spec and the public round input; row computations
saturate instead of failing.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mpc.errors import PrivacyBudgetError
from mpc.protocol.rounds import KIND_EVAL, KIND_GRAM, KIND_STEP
from mpc.protocol.spec import JobSpec, Method, Model, Standardise
from mpc.ring import FloatVector, RingVector, encode_saturating, saturate
from mpc.training.common import Z_MAX, _training, clip_norm, loss_bound, shape
from mpc.training.scaling import Scaling, _gram_scaling, _parse_input

#: Rows per batch read from the data store (about 0.5 MB per column of float64).
TRAIN_BATCH_ROWS = 65536
#: Per-row intermediate values saturate here: finite, and squares still finite.
_FINITE = 1e150


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


def _rows(
    spec: JobSpec, data: object, batch_rows: int
) -> Iterator[tuple[FloatVector, FloatVector, npt.NDArray[np.bool_]]]:
    """Per batch: features and label clamped to the declared bounds, and the hold-out mask."""
    names = [b.column for b in spec.columns]
    batches: Iterator[dict[str, FloatVector]] = data.batches(  # type: ignore[attr-defined]
        spec.dataset, names, batch_rows
    )
    for batch in batches:
        clamped = _clamped(spec, batch)
        if clamped is not None:
            yield clamped


def _clamped(
    spec: JobSpec, batch: dict[str, FloatVector]
) -> tuple[FloatVector, FloatVector, npt.NDArray[np.bool_]] | None:
    """One batch's clamped features and label and its hold-out mask (None when empty)."""
    s = shape(spec)
    t = _training(spec)
    names = [b.column for b in spec.columns]
    rows = len(batch[names[0]]) if names else 0
    if rows == 0:
        return None
    lo = np.array([b.lo for b in s.features])
    hi = np.array([b.hi for b in s.features])
    raw = np.column_stack([np.asarray(batch[n], dtype=np.float64) for n in names])
    mask = holdout_mask(raw, t.holdout, f"{spec.dataset}\x00{t.label}")
    x = np.clip(raw[:, :-1], lo, hi)
    y = np.clip(raw[:, -1], s.label.lo, s.label.hi)
    return x, y, mask


@dataclass(frozen=True)
class _Design:
    """One job's training rows as a design matrix, kept between its rounds."""

    sources: tuple[object, ...]  # the data store's arrays it was made from (by identity)
    a: FloatVector
    y: FloatVector
    norms: FloatVector  # the L2 norm of each row of ``a``


#: Designs kept between rounds (most recent jobs first), each at most this many values: a
#: round then costs only its model-dependent passes. Tables past one batch stream instead.
_DESIGN_VALUES = 1 << 22
_DESIGNS: OrderedDict[tuple[bytes, bytes], _Design] = OrderedDict()
_DESIGNS_KEPT = 2
_DESIGNS_LOCK = threading.Lock()


def _source(array: object) -> object:
    base = getattr(array, "base", None)
    return array if base is None else base


def _designs(
    spec: JobSpec, data: object, scaling: Scaling, batch_rows: int
) -> Iterator[tuple[FloatVector, FloatVector, FloatVector | None]]:
    """``(design, label, row norms or None)`` per batch of training rows (hold-out left out).

    A table that fits one batch is kept as its design between the rounds of the job (same
    spec, same scaling) while the data store hands out the same arrays: a reloaded file
    gives new arrays and a new design.
    """
    names = [b.column for b in spec.columns]
    batches: Iterator[dict[str, FloatVector]] = data.batches(  # type: ignore[attr-defined]
        spec.dataset, names, batch_rows
    )
    first = next(batches, None)
    second = next(batches, None)
    if first is None or second is not None:  # empty, or more than one batch: stream
        for batch in itertools.chain([b for b in (first, second) if b is not None], batches):
            clamped = _clamped(spec, batch)
            if clamped is not None:
                x, y, holdout = clamped
                yield design(x[~holdout], scaling), y[~holdout], None
        return
    key = (
        spec.digest(),
        scaling.mode.value.encode() + scaling.mean.tobytes() + scaling.scale.tobytes(),
    )
    sources = tuple(_source(first[n]) for n in names)
    with _DESIGNS_LOCK:
        held = _DESIGNS.get(key)
    if held is None or any(a is not b for a, b in zip(held.sources, sources, strict=True)):
        clamped = _clamped(spec, first)
        if clamped is None:
            return
        x, y, holdout = clamped
        a = design(x[~holdout], scaling)
        held = _Design(sources, a, y[~holdout], np.sqrt(np.einsum("ij,ij->i", a, a)))
        if a.size <= _DESIGN_VALUES:
            with _DESIGNS_LOCK:
                _DESIGNS[key] = held
                _DESIGNS.move_to_end(key)
                while len(_DESIGNS) > _DESIGNS_KEPT:
                    _DESIGNS.popitem(last=False)
    yield held.a, held.y, held.norms


def _clipped_sum(
    a: FloatVector, r: FloatVector, norms: FloatVector | None, clip: float
) -> FloatVector:
    """The sum over rows of ``a_i * r_i`` clipped to L2 norm ``clip``, without forming the
    per-row gradients: row i's norm is ``|r_i| * ||a_i||``, so the sum is ``a.T @ (r * f)``.
    Falls back to :func:`clipped_gradients` when a norm could overflow."""
    with np.errstate(all="ignore"):
        if norms is None:
            norms = np.sqrt(np.einsum("ij,ij->i", a, a))
        size = np.abs(r) * norms
        if size.size and not (np.all(np.isfinite(size)) and float(size.max()) < _FINITE):
            return np.asarray(clipped_gradients(a, r, clip).sum(axis=0), dtype=np.float64)
        factor = np.minimum(1.0, clip / np.maximum(size, 1e-300))
        return np.asarray(a.T @ (r * factor), dtype=np.float64)


def train_local(
    spec: JobSpec,
    data: object,
    round_input: FloatVector | None,
    batch_rows: int = TRAIN_BATCH_ROWS,
) -> RingVector:
    """The party's vector for one training round (see :mod:`mpc.training`)."""
    kind, scaling, w = _parse_input(spec, round_input)
    if spec.privacy is not None and kind != KIND_STEP:
        raise PrivacyBudgetError(
            "refuses a training round that would release statistics without noise "
            "(only noised gradient rounds are allowed in a differentially private job)"
        )
    f = spec.frac_bits
    if kind == KIND_GRAM:
        return _gram(spec, _rows(spec, data, batch_rows), f)
    assert scaling is not None and w is not None
    if kind == KIND_EVAL:
        return _evaluate(spec, _rows(spec, data, batch_rows), scaling, w, f)
    return _step(spec, _designs(spec, data, scaling, batch_rows), w, f)


def _gram(
    spec: JobSpec,
    rows: Iterator[tuple[FloatVector, FloatVector, npt.NDArray[np.bool_]]],
    f: int,
) -> RingVector:
    # On bounds-scaled values in [-1, 1] (per-row entries <= 1, whatever the units); the
    # coordinator maps the Gram back to raw units (raw_gram).
    mid, half = _gram_scaling(spec)
    k = mid.size + 1
    gram = np.zeros((k, k))
    for x, y, holdout in rows:
        train = ~holdout
        raw = np.column_stack([x[train], y[train]])
        with np.errstate(all="ignore"):
            scaled = saturate((raw - mid) / half, -1.0, 1.0)
        b = np.column_stack([np.ones(raw.shape[0]), scaled])
        gram += b.T @ b
    return _encode_sum(gram[np.triu_indices(k)], f)


def _step(
    spec: JobSpec,
    designs: Iterator[tuple[FloatVector, FloatVector, FloatVector | None]],
    w: FloatVector,
    f: int,
) -> RingVector:
    t = _training(spec)
    p = w.size
    clip, bound = clip_norm(spec), loss_bound(spec)
    private = spec.privacy is not None
    ring_grad = np.zeros(p, dtype=np.uint64)
    ring_loss = np.zeros(1, dtype=np.uint64)
    float_grad, float_loss = np.zeros(p), 0.0
    hess = np.zeros((p, p))
    count = 0
    for a, y, norms in designs:
        if t.batch_rate > 0:
            # Poisson sampling: each row independently, from the OS CSPRNG, every round.
            sampled = poisson_mask(a.shape[0], t.batch_rate)
            a, y = a[sampled], y[sampled]
            norms = None if norms is None else norms[sampled]
        r, loss, curvature = per_example(t.model, a, y, w)
        losses = np.clip(loss, 0.0, bound)
        if private:
            # Encode every clipped per-example gradient, then add in the ring: one row moves
            # the sum by at most the encoded clip norm (with the sqrt(p)/2 rounding slack),
            # exactly the sensitivity the noise is calibrated to.
            grads = clipped_gradients(a, r, clip)
            ring_grad += encode_saturating(grads, f).sum(axis=0, dtype=np.uint64)
            ring_loss += encode_saturating(losses, f).sum(dtype=np.uint64, keepdims=True)
        else:
            # No sensitivity to honour: sum in float64 and encode once (less rounding). The
            # same headroom bound holds for the sum.
            float_grad += _clipped_sum(a, r, norms, clip)
            float_loss += float(losses.sum())
        count += a.shape[0]
        if t.method is Method.NEWTON:
            hess += (a * curvature[:, None]).T @ a
    if private:
        grad_sum, loss_sum = ring_grad, ring_loss
    else:
        grad_sum, loss_sum = _encode_sum(float_grad, f), _encode_sum(float_loss, f)
    parts = [grad_sum, np.array([np.uint64(count << f)], dtype=np.uint64), loss_sum]
    if t.method is Method.NEWTON:
        parts.append(_encode_sum(hess[np.triu_indices(p)], f))
    return np.concatenate(parts).astype(np.uint64)


def _evaluate(
    spec: JobSpec,
    rows: Iterator[tuple[FloatVector, FloatVector, npt.NDArray[np.bool_]]],
    scaling: Scaling,
    w: FloatVector,
    f: int,
) -> RingVector:
    """``[n, loss, correct|SSE, sum y, sum y^2]`` over training rows, then hold-out rows."""
    model = _training(spec).model
    bound = loss_bound(spec)
    sums = np.zeros((2, 5))
    for x, y_all, holdout in rows:
        for part, mask in enumerate((~holdout, holdout)):
            a, y = design(x[mask], scaling), y_all[mask]
            _, loss, _ = per_example(model, a, y, w)
            with np.errstate(all="ignore"):
                z = saturate(a @ w, -_FINITE, _FINITE)
            if model is Model.LOGISTIC:
                quality = ((z >= 0).astype(np.float64) == y).astype(np.float64)
            else:
                quality = np.minimum((z - y) ** 2, 2 * bound)
            sums[part] += [
                float(y.size),
                float(np.clip(loss, 0.0, bound).sum()),
                float(quality.sum()),
                float(y.sum()),
                float((y * y).sum()),
            ]
    return np.concatenate([_encode_sum(sums[0], f), _encode_sum(sums[1], f)])
