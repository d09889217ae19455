"""A training round reuses its job's design matrix between rounds and sums clipped gradients
without forming them: the same vector as streaming the rows, and a reloaded table is read."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    Model,
    Participant,
    Standardise,
    Statistic,
    TrainingSpec,
)
from mpc.ring import decode
from mpc.training import KIND_STEP, bounds_scaling, local, round_input, shape

D = 5


def _spec(holdout: float = 0.0, job: str = "j") -> JobSpec:
    columns = tuple(ColumnBound(f"x{i}", -1.0, 1.0) for i in range(D))
    return JobSpec(
        job_id=job,
        statistic=Statistic.TRAIN,
        dataset="t",
        columns=(*columns, ColumnBound("y", 0.0, 1.0)),
        frac_bits=24,
        participants=(Participant("a", 1000), Participant("b", 1000)),
        training=TrainingSpec(
            model=Model.LOGISTIC,
            label="y",
            rounds=5,
            lr=0.5,
            clip=0.5,
            standardise=Standardise.BOUNDS,
            holdout=holdout,
        ),
    )


class Store:
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.columns = {f"x{i}": rng.uniform(-1.5, 1.5, 700) for i in range(D)}
        self.columns["y"] = (rng.uniform(size=700) > 0.4).astype(float)
        self.reads = 0

    def batches(
        self, name: str, columns: list[str], batch_rows: int
    ) -> Iterator[dict[str, np.ndarray]]:
        self.reads += 1
        for start in range(0, 700, batch_rows):
            yield {c: self.columns[c][start : start + batch_rows] for c in columns}


def _round(spec: JobSpec, store: Store, w: np.ndarray, batch_rows: int) -> np.ndarray:
    vector = local.train_local(
        spec, store, round_input(KIND_STEP, bounds_scaling(spec), w), batch_rows=batch_rows
    )
    return decode(vector, spec.frac_bits)


@pytest.mark.parametrize("holdout", [0.0, 0.3])
def test_kept_design_gives_the_streamed_rounds_vector(
    holdout: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    real_design = local.design

    def counting(x: np.ndarray, scaling: object) -> np.ndarray:
        made.append(x.shape[0])
        return real_design(x, scaling)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "design", counting)
    spec = _spec(holdout, job=f"keep-{holdout}")
    store = Store(1)
    w = np.linspace(-2.0, 3.0, shape(spec).p)  # large enough that many rows are clipped
    streamed = _round(spec, store, w, batch_rows=128)  # several batches: never kept
    first = _round(spec, store, w, batch_rows=4096)
    again = _round(spec, store, w, batch_rows=4096)  # from the kept design
    np.testing.assert_allclose(first, streamed, atol=1e-6)
    np.testing.assert_array_equal(again, first)
    assert len(made) == 6 + 1  # 6 streamed batches, then one design for both rounds


def test_a_reloaded_table_is_not_answered_from_the_kept_design() -> None:
    spec = _spec(job="reload")
    store = Store(2)
    w = np.full(shape(spec).p, 0.3)
    before = _round(spec, store, w, batch_rows=4096)
    store.columns = Store(3).columns  # the file changed: the store hands out new arrays
    after = _round(spec, store, w, batch_rows=4096)
    fresh = _round(_spec(job="reload-fresh"), store, w, batch_rows=4096)
    np.testing.assert_array_equal(after, fresh)
    assert not np.array_equal(after, before)


def test_clipped_sum_matches_the_per_row_gradients_and_survives_overflow() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(300, 7))
    r = rng.normal(size=300) * 10.0 ** rng.integers(-3, 3, 300)
    expected = local.clipped_gradients(a, r, 1.5).sum(axis=0)
    np.testing.assert_allclose(local._clipped_sum(a, r, None, 1.5), expected, rtol=1e-12)
    huge = r.copy()
    huge[:3] = [1e200, -1e300, np.inf]  # norms overflow: the per-row path decides
    with np.errstate(all="ignore"):
        got = local._clipped_sum(a, huge, None, 1.5)
    np.testing.assert_array_equal(got, local.clipped_gradients(a, huge, 1.5).sum(axis=0))
    assert np.all(np.isfinite(got))
