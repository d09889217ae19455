"""Predictions of a trained model agree with scikit-learn's on the same coefficients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mpc.errors import QueryError
from mpc.training import predict, predict_class, predict_rows

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402

LABELS = ("intercept", "age", "bmi")
BOUNDS = [[0.0, 120.0], [10.0, 60.0]]


def _rows(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"bmi": rng.uniform(15, 45, n), "age": rng.uniform(20, 90, n), "other": np.ones(n)}
    )


def _model(kind: str) -> dict[str, object]:
    return {"model": kind, "features": list(LABELS[1:]), "bounds": BOUNDS}


def test_linear_matches_sklearn() -> None:
    values = np.array([2.5, 0.03, -0.11])
    frame = _rows()
    reference = LinearRegression()
    reference.coef_, reference.intercept_ = values[1:], values[0]
    reference.n_features_in_ = 2
    want = reference.predict(frame[["age", "bmi"]].to_numpy())
    got = predict_rows(values, LABELS, _model("linear"), frame)  # columns picked by name
    np.testing.assert_allclose(got, want, rtol=1e-12)
    array = predict_rows(values, LABELS, _model("linear"), frame[["age", "bmi"]].to_numpy())
    np.testing.assert_allclose(array, want, rtol=1e-12)


def test_logistic_probabilities_and_classes_match_sklearn() -> None:
    values = np.array([-4.0, 0.05, 0.04])
    frame = _rows()
    x = frame[["age", "bmi"]].to_numpy()
    reference = LogisticRegression()
    reference.coef_, reference.intercept_ = values[1:].reshape(1, -1), values[:1]
    reference.classes_ = np.array([0.0, 1.0])
    prob = predict_rows(values, LABELS, _model("logistic"), frame)
    np.testing.assert_allclose(prob, reference.predict_proba(x)[:, 1], rtol=1e-10)
    classes = predict_class(values, LABELS, _model("logistic"), frame)
    np.testing.assert_array_equal(classes, reference.predict(x))
    strict = predict_class(values, LABELS, _model("logistic"), frame, threshold=0.9)
    assert strict.sum() < classes.sum()
    # The same as the saved-model path (mpc predict).
    saved = {
        "model": "logistic",
        "bounds": BOUNDS,
        "original_scale": {"intercept": values[0], "coefficients": values[1:].tolist()},
    }
    cls, p = predict(saved, x)
    assert p is not None
    np.testing.assert_allclose(p, prob)
    np.testing.assert_array_equal(cls, classes)


def test_features_are_clamped_to_the_training_bounds() -> None:
    values = np.array([0.0, 1.0, 0.0])
    frame = pd.DataFrame({"age": [-5.0, 50.0, 500.0], "bmi": [20.0, 20.0, 20.0]})
    np.testing.assert_allclose(predict_rows(values, LABELS, _model("linear"), frame), [0, 50, 120])
    unclamped = predict_rows(values, LABELS, _model("linear"), frame, clip=False)
    np.testing.assert_allclose(unclamped, [-5, 50, 500])


def test_mapping_and_single_row() -> None:
    values = np.array([1.0, 2.0, 3.0])
    got = predict_rows(values, LABELS, _model("linear"), {"age": [1.0], "bmi": [20.0]})
    np.testing.assert_allclose(got, [1 + 2 + 60])
    np.testing.assert_allclose(predict_rows(values, LABELS, _model("linear"), [1.0, 20.0]), [63])


def test_errors_name_what_is_wrong() -> None:
    values = np.array([1.0, 2.0, 3.0])
    with pytest.raises(QueryError, match=r"lack the model's feature columns \['bmi'\]"):
        predict_rows(values, LABELS, _model("linear"), pd.DataFrame({"age": [1.0]}))
    with pytest.raises(QueryError, match="2 feature columns"):
        predict_rows(values, LABELS, _model("linear"), np.ones((3, 3)))
    with pytest.raises(QueryError, match="logistic model"):
        predict_class(values, LABELS, _model("linear"), np.ones((3, 2)))
    with pytest.raises(QueryError, match="intercept"):
        predict_rows(values[:2], LABELS, _model("linear"), np.ones((3, 2)))
