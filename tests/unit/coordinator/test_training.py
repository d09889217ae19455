"""Secure training with in-process parties: scikit-learn data split over 3 and 5 parties."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.config import BudgetConfig
from mpc.coordinator.jobs import JobRunner, PartyLink, Query
from mpc.coordinator.training import TrainingInterruptedError, TrainState, resume_query, train
from mpc.errors import PrivacyBudgetError
from mpc.ledger import Ledger
from mpc.protocol.spec import Method, Model, NoiseMode, Standardise, Statistic, TrainingSpec
from mpc.ring import RingVector
from mpc.training import holdout_mask, poisson_mask, predict
from tests.helpers import party_runtimes
from tests.unit.coordinator.test_jobs import LocalLink

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def _bounds(x: np.ndarray) -> list[tuple[float, float]]:
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.05 * (hi - lo) + 1e-9
    return [(float(a - b), float(c + b)) for a, b, c in zip(lo, pad, hi, strict=True)]


def _links(
    cert_dir: Path,
    tmp_path: Path,
    data: np.ndarray,
    names: Sequence[str],
    cuts: Sequence[int],
    *,
    budget: BudgetConfig | None = None,
    link: type[LocalLink] = LocalLink,
) -> dict[str, PartyLink]:
    runtimes = party_runtimes(
        cert_dir, tmp_path, np.split(data, cuts), names, _bounds(data), budget=budget
    )
    return {pid: link(runtime) for pid, runtime in runtimes.items()}


def _query(names: Sequence[str], training: TrainingSpec, **kw: object) -> Query:
    return Query(Statistic.TRAIN, "d", tuple(names), training=training, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, list[str]]:
    bunch = load_diabetes()
    names = [*(n.replace(" ", "_") for n in bunch.feature_names), "target"]
    return np.column_stack([bunch.data, bunch.target]), names


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, list[str]]:
    bunch = load_breast_cancer()
    names = [*(f"f{i}" for i in range(bunch.data.shape[1])), "malignant"]
    return np.column_stack([bunch.data, 1.0 - bunch.target]), names


def _ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Pooled plaintext ridge in the standardised space, intercept unpenalised."""
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    a = np.column_stack([np.ones(len(y)), z])
    pen = np.eye(a.shape[1]) * l2
    pen[0, 0] = 0
    return np.linalg.solve(a.T @ a / len(y) + pen, a.T @ y / len(y))


def test_closed_form_and_gradient_descent_match_pooled_ridge(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, diabetes: tuple[np.ndarray, list[str]]
) -> None:
    data, names = diabetes
    links = _links(cert_dir, tmp_path, data, names, [150, 300])
    runner = JobRunner(links, pool, job_timeout=60.0, rpc_timeout=30.0)
    l2 = 0.01
    expected = _ridge(data[:, :-1], data[:, -1], l2)
    closed = train(
        runner,
        "cf",
        _query(names, TrainingSpec(Model.LINEAR, "target", 1, l2=l2, method=Method.CLOSED_FORM)),
        _noop,
    )
    weights = np.array([closed.model["intercept"], *closed.model["coefficients"]])  # type: ignore[misc]
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # Original scale: also equal to plain lstsq when l2 = 0.
    plain = train(
        runner,
        "cf0",
        _query(names, TrainingSpec(Model.LINEAR, "target", 1, method=Method.CLOSED_FORM)),
        _noop,
    )
    x1 = np.column_stack([np.ones(len(data)), data[:, :-1]])
    lstsq = np.linalg.lstsq(x1, data[:, -1], rcond=None)[0]
    np.testing.assert_allclose(plain.values, lstsq, rtol=1e-4, atol=1e-3)
    assert plain.model["evaluation"]["train_r2"] == pytest.approx(0.5177, abs=1e-3)  # type: ignore[index]
    # Gradient descent converges to the closed form (a larger l2 keeps the correlated
    # diabetes features well conditioned enough for 300 rounds).
    l2 = 0.1
    closed = train(
        runner,
        "cf1",
        _query(names, TrainingSpec(Model.LINEAR, "target", 1, l2=l2, method=Method.CLOSED_FORM)),
        _noop,
    )
    gd = train(
        runner,
        "gd",
        _query(names, TrainingSpec(Model.LINEAR, "target", 300, lr=0.3, l2=l2, tol=1e-6)),
        _noop,
    )
    np.testing.assert_allclose(gd.values, closed.values, rtol=1e-3, atol=1e-3)
    curve = [c["loss"] for c in gd.model["curve"]]  # type: ignore[attr-defined]
    assert curve[-1] < curve[0]


@pytest.mark.parametrize(
    ("cuts", "label"), [([190, 380], "3 even"), ([40, 100, 300, 520], "5 uneven")]
)
def test_logistic_newton_matches_sklearn(
    cert_dir: Path,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    cancer: tuple[np.ndarray, list[str]],
    cuts: list[int],
    label: str,
) -> None:
    data, names = cancer
    x, y = data[:, :-1], data[:, -1]
    l2 = 0.01
    links = _links(cert_dir, tmp_path, data, names, cuts)
    runner = JobRunner(links, pool, job_timeout=60.0, rpc_timeout=30.0)
    spec = TrainingSpec(Model.LOGISTIC, "malignant", 20, l2=l2, method=Method.NEWTON, tol=1e-9)
    out = train(runner, "lr", _query(names, spec), _noop)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = LogisticRegression(C=1.0 / (len(y) * l2), tol=1e-10, max_iter=10_000).fit(z, y)
    ours = np.array(out.model["coefficients"])
    np.testing.assert_allclose(ours, reference.coef_[0], atol=1e-2)
    assert out.model["intercept"] == pytest.approx(reference.intercept_[0], abs=1e-2)
    predicted, _ = predict(out.model, x)
    accuracy = float((predicted == y).mean())
    assert accuracy == pytest.approx(reference.score(z, y), abs=0.01)
    assert out.model["evaluation"]["train_accuracy"] == pytest.approx(accuracy, abs=1e-9)  # type: ignore[index]


def test_model_does_not_depend_on_the_split(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, cancer: tuple[np.ndarray, list[str]]
) -> None:
    data, names = cancer
    spec = TrainingSpec(Model.LOGISTIC, "malignant", 8, lr=0.5, l2=0.01)
    models = []
    for i, cuts in enumerate(([100, 200], [10, 500, 530, 560])):
        sub = tmp_path / str(i)
        sub.mkdir()
        runner = JobRunner(
            _links(cert_dir, sub, data, names, cuts), pool, job_timeout=60.0, rpc_timeout=30.0
        )
        model = train(runner, f"s{i}", _query(names, spec), _noop).model
        models.append(np.array([model["intercept"], *model["coefficients"]]))  # type: ignore[misc]
    np.testing.assert_allclose(models[0], models[1], rtol=0, atol=1e-6)


def test_holdout_split_and_sampler() -> None:
    raw = np.arange(20_000, dtype=np.float64).reshape(-1, 2)
    mask = holdout_mask(raw, 0.2, "salt")
    assert 0.17 < mask.mean() < 0.23
    assert (holdout_mask(raw, 0.2, "salt") == mask).all()  # deterministic
    assert 0.27 < poisson_mask(10_000, 0.3).mean() < 0.33


class FailingLink(LocalLink):
    """Fails from its fourth training round on (rounds 0-2 complete)."""

    fail = True

    def contribute(
        self,
        job_id: str,
        round_id: int,
        length: int,
        timeout: float,
        round_input: np.ndarray | None = None,
    ) -> Iterator[tuple[int, RingVector]]:
        if FailingLink.fail and round_id >= 3:
            raise PrivacyBudgetError("simulated crash")
        yield from super().contribute(job_id, round_id, length, timeout, round_input)


def test_dp_training_budget_failure_and_resume(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, cancer: tuple[np.ndarray, list[str]]
) -> None:
    data, names = cancer
    budget = BudgetConfig(1.2, 1e-5, allow_central=True)
    links = _links(cert_dir, tmp_path, data, names, [190, 380], budget=budget)
    ledger = Ledger(tmp_path / "coord.sqlite")
    runner = JobRunner(
        links, pool, job_timeout=60.0, rpc_timeout=30.0, ledger=ledger, budgets={"d": budget}
    )
    spec = TrainingSpec(
        Model.LOGISTIC, "malignant", 10, lr=1.0, l2=0.01, clip=1.0, standardise=Standardise.BOUNDS
    )
    query = _query(names, spec, noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-5)
    out = train(runner, "dp1", query, _noop)
    assert out.noise is not None and out.noise.epsilon_spent <= 1.0 + 1e-9
    assert out.model["evaluation"] is None and len(out.model["curve"]) == 10  # type: ignore[arg-type]
    status = ledger.status("d", budget.budget())
    assert status.charges == 1 and 0.9 < status.spent_epsilon <= 1.0 + 1e-9
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert link.runtime.ledger_status()[0].charges == 1
    # A second run at epsilon 1.5 would exceed the budget: refused before any round.
    with pytest.raises(PrivacyBudgetError, match="would exceed the privacy budget"):
        train(
            runner,
            "dp2",
            _query(names, spec, noise=NoiseMode.CENTRAL, epsilon=1.0, delta=1e-5),
            _noop,
        )
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert not link.runtime._jobs


def test_party_failure_keeps_last_round_and_resume_continues(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, cancer: tuple[np.ndarray, list[str]]
) -> None:
    data, names = cancer
    links = _links(cert_dir, tmp_path, data, names, [190, 380])
    links["b"] = FailingLink(links["b"].runtime)  # type: ignore[attr-defined]
    runner = JobRunner(links, pool, job_timeout=60.0, rpc_timeout=30.0)
    spec = TrainingSpec(Model.LOGISTIC, "malignant", 6, lr=0.5, l2=0.01)
    query = _query(names, spec)
    saved: list[TrainState] = []
    FailingLink.fail = True
    with pytest.raises(TrainingInterruptedError, match=r"party 'b'.*after round 2 of 6"):
        train(runner, "f1", query, _noop, checkpoint=saved.append)
    assert [s.round for s in saved] == [1, 2]  # round 0 was the moments
    FailingLink.fail = False
    resumed = train(runner, "f2", resume_query(query, saved[-1], "f1"), _noop, resume=saved[-1])
    full = train(runner, "f3", query, _noop)
    assert resumed.model["rounds"] == 6
    np.testing.assert_allclose(resumed.values, full.values, rtol=1e-6, atol=1e-6)


def test_service_persists_rounds_and_resumes_a_failed_job(
    cert_dir: Path, tmp_path: Path, cancer: tuple[np.ndarray, list[str]]
) -> None:
    from mpc.coordinator.service import CoordinatorService
    from mpc.coordinator.store import JobState, JobStore

    data, names = cancer
    links = _links(cert_dir, tmp_path, data, names, [190, 380])
    links["b"] = FailingLink(links["b"].runtime)  # type: ignore[attr-defined]
    store = JobStore(tmp_path / "jobs.sqlite")
    service = CoordinatorService(
        links,
        {pid: "local" for pid in links},
        store,
        job_timeout=60.0,
        rpc_timeout=30.0,
        max_concurrent_jobs=1,
    )
    try:
        FailingLink.fail = True
        spec = TrainingSpec(Model.LOGISTIC, "malignant", 5, lr=0.5, l2=0.01)
        failed = service.submit(_query(names, spec), "tester")
        events = list(service.watch(failed, timeout=60))
        assert events[-1].state is JobState.FAILED
        assert "model of round 2 is kept" in service.record(failed).error
        assert store.last_round(failed)["round"] == 2  # type: ignore[index]
        with store._lock:  # one checkpoint row per job: the latest, with the whole curve
            rows = store._db.execute(
                "SELECT round FROM training_rounds WHERE job_id = ?", (failed,)
            ).fetchall()
        assert rows == [(2,)]
        FailingLink.fail = False
        resumed = service.submit(Query(Statistic.TRAIN, "", resume_from=failed), "tester")
        assert list(service.watch(resumed, timeout=60))[-1].state is JobState.SUCCEEDED
        model = service.model(resumed)
        assert model is not None and model["rounds"] == 5 and model["resumed_from"] == failed
        assert [c["round"] for c in model["curve"]] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
        done = service.submit(Query(Statistic.TRAIN, "", resume_from=resumed), "tester")
        assert list(service.watch(done, timeout=60))[-1].state is JobState.FAILED
        assert "cannot be resumed" in service.record(done).error
    finally:
        service.close()
        store.close()
