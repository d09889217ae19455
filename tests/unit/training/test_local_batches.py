"""The party's training round streams rows in batches: the result does not depend on the
batch size (exactly in the ring with DP, to float rounding without)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mpc.protocol.rounds import KIND_EVAL, KIND_GRAM, KIND_STEP
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    Method,
    Model,
    NoiseMode,
    Participant,
    PrivacySpec,
    Standardise,
    Statistic,
    TrainingSpec,
)
from mpc.ring import decode
from mpc.training import bounds_scaling, round_input, train_local

COLUMNS = ("a", "b", "y")


class BatchData:
    """A LocalData stand-in serving columns from memory and counting the batches read."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns
        self.batch_sizes: list[int] = []

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 65536
    ) -> Iterator[dict[str, np.ndarray]]:
        rows = len(self.columns[columns[0]])
        for start in range(0, max(rows, 1), batch_rows):
            batch = {c: self.columns[c][start : start + batch_rows] for c in columns}
            self.batch_sizes.append(len(batch[columns[0]]))
            yield batch


def _data(rows: int, model: Model) -> BatchData:
    rng = np.random.default_rng(7)
    a = rng.normal(0, 2, rows)
    b = rng.uniform(-5, 15, rows)  # partly outside the bounds: clamping matters
    if model is Model.LOGISTIC:
        y = (a + 0.3 * b + rng.normal(0, 1, rows) > 1).astype(np.float64)
    else:
        y = 1.5 * a - 0.5 * b + rng.normal(0, 1, rows)
    return BatchData({"a": a, "b": b, "y": y})


def _spec(
    model: Model,
    method: Method = Method.GD,
    *,
    private: bool = False,
    holdout: float = 0.25,
    batch_rate: float = 0.0,
) -> JobSpec:
    label_bounds = (0.0, 1.0) if model is Model.LOGISTIC else (-30.0, 30.0)
    return JobSpec(
        job_id="job-1",
        statistic=Statistic.TRAIN,
        dataset="people",
        columns=(
            ColumnBound("a", -6.0, 6.0),
            ColumnBound("b", 0.0, 10.0),
            ColumnBound("y", *label_bounds),
        ),
        frac_bits=24,
        participants=(Participant("p1", 10_000), Participant("p2", 10_000)),
        privacy=PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 1) if private else None,
        training=TrainingSpec(
            model,
            "y",
            5,
            method=method,
            holdout=0.0 if private else holdout,
            batch_rate=batch_rate,
            clip=1.0 if private else 0.0,
            standardise=Standardise.BOUNDS,
        ),
    )


def _input(spec: JobSpec, kind: int) -> np.ndarray:
    if kind == KIND_GRAM:
        return round_input(kind)
    return round_input(kind, bounds_scaling(spec), np.array([0.1, -0.2, 0.3]))


@pytest.mark.parametrize("model", [Model.LINEAR, Model.LOGISTIC])
@pytest.mark.parametrize("kind", [KIND_GRAM, KIND_STEP, KIND_EVAL])
@pytest.mark.parametrize("method", [Method.GD, Method.NEWTON])
def test_batch_size_does_not_change_the_round(model: Model, kind: int, method: Method) -> None:
    spec = _spec(model, method)
    data = _data(1000, model)
    whole = train_local(spec, data, _input(spec, kind), batch_rows=10**6)
    streamed = train_local(spec, data, _input(spec, kind), batch_rows=37)
    assert max(data.batch_sizes) == 1000 and data.batch_sizes.count(37) == 27
    assert whole.shape == streamed.shape
    np.testing.assert_allclose(
        decode(streamed, spec.frac_bits), decode(whole, spec.frac_bits), rtol=1e-9, atol=1e-6
    )


def test_private_step_is_identical_in_the_ring() -> None:
    spec = _spec(Model.LOGISTIC, private=True)
    data = _data(500, Model.LOGISTIC)
    whole = train_local(spec, data, _input(spec, KIND_STEP), batch_rows=10**6)
    streamed = train_local(spec, data, _input(spec, KIND_STEP), batch_rows=64)
    np.testing.assert_array_equal(whole, streamed)


def test_holdout_split_is_per_row_whatever_the_batches() -> None:
    spec = _spec(Model.LINEAR, holdout=0.3)
    data = _data(400, Model.LINEAR)
    values = decode(train_local(spec, data, _input(spec, KIND_EVAL), batch_rows=11), 24)
    whole = decode(train_local(spec, data, _input(spec, KIND_EVAL), batch_rows=400), 24)
    assert values[0] + values[5] == pytest.approx(400)
    assert 60 < values[5] < 180  # about 30 % held out
    assert values[0] == pytest.approx(whole[0]) and values[5] == pytest.approx(whole[5])


def test_poisson_sampling_per_row_with_batches() -> None:
    spec = _spec(Model.LINEAR, batch_rate=0.25)
    data = _data(4000, Model.LINEAR)
    counts = [
        decode(train_local(spec, data, _input(spec, KIND_STEP), batch_rows=128), 24)[3]
        for _ in range(5)
    ]
    train_rows = decode(train_local(_spec(Model.LINEAR), data, _input(spec, KIND_STEP)), 24)[3]
    assert len(set(counts)) > 1  # fresh randomness every round
    for count in counts:
        assert abs(count - 0.25 * train_rows) < 6 * np.sqrt(train_rows * 0.25 * 0.75)


def test_empty_table_gives_zero_sums() -> None:
    spec = _spec(Model.LINEAR, Method.NEWTON)
    data = BatchData({c: np.zeros(0) for c in COLUMNS})
    for kind in (KIND_GRAM, KIND_STEP, KIND_EVAL):
        out = train_local(spec, data, _input(spec, kind))
        assert not np.any(out)
