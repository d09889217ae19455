"""Apply a trained model to feature rows, locally (no data leaves the caller).

Predictions reproduce what training optimised: features are clamped to the declared bounds
the parties clamped them to, then the original-scale intercept and coefficients apply (the
standardisation is already folded into them). Linear models give values; logistic models give
probabilities of the positive class, or 0/1 classes with :func:`predict_class`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import numpy as np

from mpc.errors import QueryError
from mpc.protocol.spec import Model
from mpc.ring import FloatVector


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


def feature_matrix(features: Sequence[str], rows: object) -> FloatVector:
    """The rows as a float64 ``(n, d)`` matrix in the model's feature order.

    ``rows`` is a pandas DataFrame (or any mapping of column name to values) holding at least
    the model's feature columns, or a 2D array whose columns are the features in order.
    """
    columns = getattr(rows, "columns", None)
    if columns is not None or isinstance(rows, Mapping):
        source = columns if columns is not None else rows
        available = {str(c) for c in cast(Iterable[object], source)}
        missing = [f for f in features if f not in available]
        if missing:
            raise QueryError(f"the rows lack the model's feature columns {missing}")
        table = rows  # a DataFrame or a mapping: index by column name
        return np.column_stack(
            [np.asarray(table[f], dtype=np.float64) for f in features]  # type: ignore[index]
        ).reshape(-1, len(features))
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim == 1 and matrix.size == len(features):
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != len(features):
        raise QueryError(
            f"expected rows with {len(features)} feature columns {list(features)}, "
            f"got an array of shape {matrix.shape}"
        )
    return matrix


def _margin(
    coefficients: Sequence[float] | FloatVector,
    labels: Sequence[str],
    model: Mapping[str, object],
    rows: object,
    clip: bool,
) -> FloatVector:
    values = np.asarray(coefficients, dtype=np.float64)
    if len(labels) != values.size or not labels or labels[0] != "intercept":
        raise QueryError("coefficients and labels must be the intercept, then each feature")
    features = list(labels[1:])
    x = feature_matrix(features, rows)
    bounds = model.get("bounds")
    if clip and isinstance(bounds, list) and len(bounds) == len(features):
        # The parties trained on values clamped to the declared bounds: clamp the same way.
        lo = np.array([float(b[0]) for b in bounds])
        hi = np.array([float(b[1]) for b in bounds])
        x = np.clip(x, lo, hi)
    return np.asarray(x @ values[1:] + values[0], dtype=np.float64)


def predict_rows(
    coefficients: Sequence[float] | FloatVector,
    labels: Sequence[str],
    model: Mapping[str, object],
    rows: object,
    *,
    clip: bool = True,
) -> FloatVector:
    """Predictions for ``rows`` from a trained model (``TrainResult.values/.labels/.model``).

    ``coefficients``: intercept then one coefficient per feature, on the original scale;
    ``labels``: ``"intercept"`` then the feature names; ``model``: the model JSON (its
    ``"model"`` kind and the features' ``"bounds"``). Linear: the predicted values; logistic:
    the probability of class 1. ``clip`` clamps features to the training bounds first.
    """
    z = _margin(coefficients, labels, model, rows, clip)
    if model.get("model") == Model.LOGISTIC.value:
        return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)
    return z


def predict_class(
    coefficients: Sequence[float] | FloatVector,
    labels: Sequence[str],
    model: Mapping[str, object],
    rows: object,
    *,
    threshold: float = 0.5,
    clip: bool = True,
) -> FloatVector:
    """Logistic models: 1.0 where the probability is at least ``threshold``, else 0.0."""
    if model.get("model") != Model.LOGISTIC.value:
        raise QueryError("predict_class needs a logistic model; use predict for a linear one")
    if not 0.0 < threshold < 1.0:
        raise QueryError(f"threshold must be between 0 and 1, not {threshold}")
    prob = predict_rows(coefficients, labels, model, rows, clip=clip)
    return (prob >= threshold).astype(np.float64)
