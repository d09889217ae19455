"""Safe training defaults: automatic step, divergence, separation, large row limits, clamps.

In-process parties (as in tests/unit/coordinator/test_training.py); scikit-learn's bundled
diabetes data (no download) split unevenly over 4 parties.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.coordinator.jobs import JobRunner, PartyLink, Query
from mpc.coordinator.training import train
from mpc.errors import QueryError
from mpc.protocol.spec import Model, Standardise, Statistic, TrainingSpec
from mpc.ring import Component, check_headroom
from tests.helpers import party_runtimes
from tests.unit.coordinator.test_jobs import LocalLink

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

CUTS = [40, 190, 230]  # 4 parties: 40, 150, 40 and 212 rows


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def _links(
    cert_dir: Path,
    tmp_path: Path,
    data: np.ndarray,
    names: Sequence[str],
    cuts: Sequence[int],
    bounds: Sequence[tuple[float, float]],
    max_rows: int = 1000,
) -> dict[str, PartyLink]:
    runtimes = party_runtimes(
        cert_dir, tmp_path, np.split(data, cuts), names, bounds, max_rows=max_rows
    )
    return {pid: LocalLink(runtime) for pid, runtime in runtimes.items()}


def _pad_bounds(x: np.ndarray) -> list[tuple[float, float]]:
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.05 * (hi - lo) + 1e-9
    return [(float(a - b), float(c + b)) for a, b, c in zip(lo, pad, hi, strict=True)]


def _query(names: Sequence[str], training: TrainingSpec, **kw: object) -> Query:
    return Query(Statistic.TRAIN, "d", tuple(names), training=training, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, list[str]]:
    bunch = load_diabetes()
    names = [*(n.replace(" ", "_") for n in bunch.feature_names), "target"]
    return np.column_stack([bunch.data, bunch.target]), names


def _r2(model: dict[str, object]) -> float:
    evaluation = model["evaluation"]
    assert isinstance(evaluation, dict)
    return float(evaluation["train_r2"])


def _runner(links: dict[str, PartyLink], pool: ThreadPoolExecutor) -> JobRunner:
    return JobRunner(links, pool, job_timeout=60.0, rpc_timeout=30.0)


# --- item 4: safe defaults ---------------------------------------------------------------


def test_default_linear_training_on_diabetes_matches_sklearn(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, diabetes: tuple[np.ndarray, list[str]]
) -> None:
    data, names = diabetes
    runner = _runner(_links(cert_dir, tmp_path, data, names, CUTS, _pad_bounds(data)), pool)
    reference = LinearRegression().fit(data[:, :-1], data[:, -1]).score(data[:, :-1], data[:, -1])
    # lr 0 is what `mpc train` sends without --lr: the coordinator's automatic safe step.
    out = train(
        runner, "job-auto", _query(names, TrainingSpec(Model.LINEAR, "target", 20, lr=0)), _noop
    )
    assert abs(_r2(out.model) - reference) < 0.005
    step = out.model["hyperparameters"]["step"]  # type: ignore[index]
    assert 0 < step < 2 / 4.02  # below 2 / lambda_max of the standardised Gram
    losses = [c["loss"] for c in out.model["curve"]]  # type: ignore[attr-defined]
    assert all(b <= a for a, b in itertools.pairwise(losses))
    assert out.model["warnings"] == []


def test_an_explicit_step_that_diverges_stops_with_a_clear_error(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, diabetes: tuple[np.ndarray, list[str]]
) -> None:
    data, names = diabetes
    runner = _runner(_links(cert_dir, tmp_path, data, names, CUTS, _pad_bounds(data)), pool)
    spec = TrainingSpec(Model.LINEAR, "target", 20, lr=0.5)  # the old default
    with pytest.raises(QueryError, match="training diverged: the loss rose") as info:
        train(runner, "job-diverge", _query(names, spec), _noop)
    message = str(info.value)
    assert "lower --lr (now 0.5)" in message and "omit --lr" in message
    assert "largest stable step for this data is about 0.497" in message


def test_separable_logistic_data_warns(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(300, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)
    data = np.column_stack([x, y])
    names = ["u", "v", "label"]
    bounds = [(-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0)]
    runner = _runner(_links(cert_dir, tmp_path, data, names, [100, 200], bounds), pool)
    spec = TrainingSpec(Model.LOGISTIC, "label", 8, method="newton")  # type: ignore[arg-type]
    out = train(runner, "job-separable", _query(names, spec), _noop)
    warnings = out.model["warnings"]
    assert isinstance(warnings, list) and any("separation" in w for w in warnings)
    # With a penalty the optimum is finite: no warning.
    ridge = replace_l2(spec, 0.05)
    assert train(runner, "job-ridge", _query(names, ridge), _noop).model["warnings"] == []


def replace_l2(spec: TrainingSpec, l2: float) -> TrainingSpec:
    from dataclasses import replace

    return replace(spec, l2=l2)


# --- item 5: large row limits -------------------------------------------------------------


def test_large_row_limits_pick_fewer_fractional_bits_and_the_same_model(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, diabetes: tuple[np.ndarray, list[str]]
) -> None:
    data, names = diabetes
    bounds = _pad_bounds(data)
    spec = TrainingSpec(Model.LINEAR, "target", 20, lr=0)
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    small = _runner(_links(cert_dir, tmp_path / "s", data, names, CUTS, bounds), pool)
    big = _runner(_links(cert_dir, tmp_path / "b", data, names, CUTS, bounds, 10**8), pool)
    reference = train(small, "job-small", _query(names, spec), _noop)
    large = train(big, "job-big", _query(names, spec), _noop)
    assert large.spec.frac_bits < reference.spec.frac_bits
    np.testing.assert_allclose(large.values, reference.values, rtol=1e-4, atol=1e-3)
    # Logistic on a binary label, Newton (the Hessian entries bound the headroom).
    logistic = TrainingSpec(Model.LOGISTIC, "sex", 5, method="newton")  # type: ignore[arg-type]
    cols = [n for n in names if n != "sex"] + ["sex"]
    order = [names.index(c) for c in cols]
    bdata = data[:, order].copy()
    bdata[:, -1] = (bdata[:, -1] > 0).astype(float)
    bb = [bounds[i] for i in order[:-1]] + [(0.0, 1.0)]
    (tmp_path / "l").mkdir(exist_ok=True)
    runner = _runner(_links(cert_dir, tmp_path / "l", bdata, cols, CUTS, bb, 10**8), pool)
    assert train(runner, "job-logit", _query(cols, logistic), _noop).spec.frac_bits >= 10


def test_headroom_errors_name_a_knob_with_a_valid_number(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, diabetes: tuple[np.ndarray, list[str]]
) -> None:
    data, names = diabetes
    runner = _runner(_links(cert_dir, tmp_path, data, names, CUTS, _pad_bounds(data), 10**8), pool)
    spec = TrainingSpec(Model.LINEAR, "target", 5, lr=0, clip=1e9)
    with pytest.raises(QueryError) as info:
        train(runner, "job-clip", _query(names, spec), _noop)  # automatic frac_bits
    message = str(info.value).lower()
    assert "set --clip to at most " in message and "lower frac_bits to " in message
    clip = float(message.split("set --clip to at most ")[1].split(",")[0].split(" ")[0])
    bits = int(message.split("lower frac_bits to ")[1].split(",")[0])
    assert 0 < clip < 1e9 and 0 <= bits < 10
    # Each suggested fix alone makes the job run.
    train(runner, "job-bits", _query(names, spec, frac_bits=bits), _noop)
    fixed = TrainingSpec(Model.LINEAR, "target", 5, lr=0, clip=clip)
    train(runner, "job-fixed-clip", _query(names, fixed), _noop)


def test_headroom_message_never_suggests_impossible_values() -> None:
    with pytest.raises(QueryError) as info:
        check_headroom([Component("count", 2.0**70, knob="")], total_rows=3, frac_bits=0)
    message = str(info.value).lower()
    assert "max_rows to 0" not in message and "+/--" not in message
    assert "nothing in this job's settings fits" in message
    with pytest.raises(QueryError) as info:
        check_headroom([Component("column 'x'", 1e12)], total_rows=3 * 10**8, frac_bits=16)
    message = str(info.value)
    assert "+/--" not in message and "max_rows to 0" not in message


# --- item 6: a clamp that can change the model is reported ----------------------------


def test_a_rare_binary_feature_clamped_at_z_max_is_reported(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    rng = np.random.default_rng(3)
    rows = 40_000
    rare = np.zeros(rows)
    rare[[17, 31_000]] = 1.0  # 2 positives: standardised to ~141 > Z_MAX
    common = rng.normal(size=rows)
    y = 2.0 * common + 8.0 * rare + rng.normal(scale=0.5, size=rows)
    data = np.column_stack([common, rare, y])
    names = ["common", "rare", "y"]
    bounds = [(-6.0, 6.0), (0.0, 1.0), (-30.0, 30.0)]
    runner = _runner(
        _links(cert_dir, tmp_path, data, names, [10_000, 25_000], bounds, 100_000), pool
    )
    spec = TrainingSpec(Model.LINEAR, "y", 1, method="newton")  # type: ignore[arg-type]
    out = train(runner, "job-rare", _query(names, spec), _noop)
    warnings = out.model["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "feature 'rare'" in warnings[0] and "clamped at +/-100" in warnings[0]
    assert "--standardise bounds" in warnings[0]
    # With bounds standardisation there is no clamp, no warning, and the coefficient is exact.
    plain = TrainingSpec(Model.LINEAR, "y", 1, method="newton", standardise=Standardise.BOUNDS)  # type: ignore[arg-type]
    exact = train(runner, "job-rare-bounds", _query(names, plain), _noop)
    assert exact.model["warnings"] == []
    x1 = np.column_stack([np.ones(rows), common, rare])
    np.testing.assert_allclose(exact.values, np.linalg.lstsq(x1, y, rcond=None)[0], atol=1e-3)
