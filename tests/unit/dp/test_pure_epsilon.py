"""Pure epsilon-DP charged as pure epsilon, beside the zCDP tally; totals over resumed runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mpc import dp
from mpc.errors import PrivacyBudgetError
from mpc.ledger import Ledger

DELTA = 1e-6


def test_one_pure_query_costs_its_epsilon() -> None:
    cost = dp.PrivacyCost.discrete_laplace(1, 1)  # epsilon = D / t = 1
    assert cost.is_pure
    assert cost.pure_epsilon_total == 1
    assert cost.rho == Fraction(1, 2)
    # The zCDP conversion alone says about 5.22 (what the ledger used to charge).
    assert dp.epsilon_for_rho(cost.rho, DELTA) > 5
    assert cost.epsilon(DELTA) == 1


def test_budget_fits_as_many_pure_queries_as_their_epsilons_allow() -> None:
    budget = dp.Budget.from_epsilon_delta(3, DELTA)
    spent = dp.PrivacyCost()
    for _ in range(3):
        spent = budget.charge(spent, dp.PrivacyCost.pure_epsilon(1))
    assert spent.epsilon(DELTA) == 3
    with pytest.raises(PrivacyBudgetError):
        budget.charge(spent, dp.PrivacyCost.pure_epsilon(Fraction(1, 100)))


def test_many_small_pure_queries_still_compose_in_zcdp() -> None:
    spent = dp.PrivacyCost()
    for _ in range(400):
        spent = spent + dp.PrivacyCost.pure_epsilon(Fraction(1, 20))
    # Sum of pure epsilons is 20; zCDP composition (rho = 400 * 0.05^2 / 2 = 0.5) is tighter.
    assert spent.pure_epsilon_total == 20
    assert spent.epsilon(DELTA) == dp.epsilon_for_rho(spent.rho, DELTA) < 6


def test_a_mix_is_pure_sum_plus_the_rest_or_the_whole_conversion() -> None:
    pure = dp.PrivacyCost.pure_epsilon(1)
    gaussian = dp.PrivacyCost.from_rho(Fraction(1, 100))
    mixed = pure + gaussian
    assert not mixed.is_pure
    split = 1 + dp.epsilon_for_rho(gaussian.rho, DELTA)
    whole = dp.epsilon_for_rho(mixed.rho, DELTA)
    assert mixed.epsilon(DELTA) == min(split, whole) == split
    # Either order, the same tally.
    assert (gaussian + pure).epsilon(DELTA) == mixed.epsilon(DELTA)


def test_ledger_keeps_the_pure_tally_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    budget = dp.Budget.from_epsilon_delta(2, DELTA)
    ledger = Ledger(path)
    ledger.charge("d", "j1", dp.PrivacyCost.pure_epsilon(1), budget)
    ledger.close()
    ledger = Ledger(path)
    status = ledger.status("d", budget)
    assert status.spent_epsilon == pytest.approx(1.0)
    assert ledger.charged("d", "j1") == dp.PrivacyCost.pure_epsilon(1)
    assert ledger.charged("d", "nope") is None
    ledger.charge("d", "j2", dp.PrivacyCost.pure_epsilon(1), budget)
    with pytest.raises(PrivacyBudgetError):
        ledger.charge("d", "j3", dp.PrivacyCost.pure_epsilon(Fraction(1, 10)), budget)
    ledger.close()


def test_an_old_ledger_opens_and_its_rows_count_as_zcdp(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE privacy_ledger (
            dataset TEXT NOT NULL, job_id TEXT NOT NULL, rho_units INTEGER NOT NULL,
            rdp_units TEXT NOT NULL DEFAULT '[]', charged_at REAL NOT NULL,
            PRIMARY KEY (dataset, job_id));
        INSERT INTO privacy_ledger VALUES ('d', 'old', 500000000000, '[]', 0);
        """
    )
    db.commit()
    db.close()
    ledger = Ledger(path)
    old = ledger.spent("d")
    assert old.rho == Fraction(1, 2) and not old.pure_units  # conservative: not pure
    ledger.charge("d", "new", dp.PrivacyCost.pure_epsilon(1), None)
    spent = ledger.spent("d")
    assert spent.epsilon(DELTA) == min(
        dp.epsilon_for_rho(spent.rho, DELTA), 1 + dp.epsilon_for_rho(Fraction(1, 2), DELTA)
    )
    ledger.close()


def test_a_pure_dp_query_is_charged_its_epsilon_by_the_coordinator(
    cert_dir: Path, tmp_path: Path
) -> None:
    from mpc.config import BudgetConfig
    from mpc.coordinator.jobs import JobRunner, Query
    from mpc.protocol.spec import NoiseMode, Statistic
    from tests.unit.coordinator.test_jobs import LocalLink, _runtime

    budget = BudgetConfig(2.5, DELTA, allow_central=True)
    ledger = Ledger(tmp_path / "coord.sqlite")
    links = {pid: LocalLink(_runtime(cert_dir, tmp_path, pid)) for pid in "abc"}
    with ThreadPoolExecutor(8) as pool:
        runner = JobRunner(
            links,  # type: ignore[arg-type]
            pool,
            job_timeout=30,
            rpc_timeout=10,
            ledger=ledger,
            budgets={"health": budget},
        )
        query = Query(Statistic.COUNT, "health", noise=NoiseMode.CENTRAL, epsilon=1.0, delta=0.0)
        for job in ("p1", "p2"):  # two fit a budget of 2.5 (the old charge was 5.2 each)
            out = runner.run(job, query, lambda *_: None)
            assert out.noise is not None and out.noise.epsilon_spent == pytest.approx(1.0)
        assert ledger.status("health", budget.budget()).spent_epsilon == pytest.approx(2.0)
        with pytest.raises(PrivacyBudgetError):
            runner.run("p3", query, lambda *_: None)
    ledger.close()


# --- a resumed DP training run reports what all its runs spent ------------------------------


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def test_resumed_dp_training_reports_the_total_of_all_runs(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer

    from mpc.coordinator.jobs import JobRunner
    from mpc.coordinator.training import (
        TrainingInterruptedError,
        TrainState,
        resume_query,
        train,
    )
    from mpc.protocol.spec import Model, NoiseMode, Standardise, TrainingSpec
    from tests.unit.coordinator.test_training import FailingLink, _links, _query

    bunch = load_breast_cancer()
    names = [*(f"f{i}" for i in range(bunch.data.shape[1])), "malignant"]
    data = np.column_stack([bunch.data, 1.0 - bunch.target])
    links = _links(cert_dir, tmp_path, data, names, [190, 380])
    links["b"] = FailingLink(links["b"].runtime)  # type: ignore[attr-defined]
    ledger = Ledger(tmp_path / "coord.sqlite")
    runner = JobRunner(links, pool, job_timeout=60.0, rpc_timeout=30.0, ledger=ledger)
    spec = TrainingSpec(
        Model.LOGISTIC, "malignant", 8, lr=1.0, l2=0.01, clip=1.0, standardise=Standardise.BOUNDS
    )
    query = _query(names, spec, noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-5)
    saved: list[TrainState] = []
    FailingLink.fail = True
    try:
        with pytest.raises(TrainingInterruptedError):
            train(runner, "r1", query, lambda *_: None, checkpoint=saved.append)
        first = saved[-1]
        with pytest.raises(TrainingInterruptedError):
            train(
                runner,
                "r2",
                resume_query(query, first, "r1"),
                lambda *_: None,
                checkpoint=saved.append,
                resume=first,
            )
        second = saved[-1]
        assert second.prior_jobs == ["r1"]  # the chain travels in the checkpoint
        FailingLink.fail = False
        out = train(runner, "r3", resume_query(query, second, "r2"), lambda *_: None, resume=second)
    finally:
        FailingLink.fail = False
    total = dp.PrivacyCost()
    for job in ("r1", "r2", "r3"):
        charge = ledger.charged("d", job)
        assert charge is not None
        total = total + charge
    privacy = out.model["privacy"]
    assert isinstance(privacy, dict)
    assert privacy["runs"] == ["r1", "r2", "r3"]
    assert privacy["epsilon_spent"] == pytest.approx(float(total.epsilon(1e-5)))
    assert privacy["epsilon_spent"] > privacy["epsilon_spent_run"] + 0.1
    assert out.noise is not None and out.noise.epsilon_spent == privacy["epsilon_spent_run"]
    ledger.close()


def test_laplace_sigma_is_the_exact_standard_deviation() -> None:
    from mpc.coordinator.jobs import EXACT, _noise_outcome
    from mpc.protocol.spec import (
        ColumnBound,
        JobSpec,
        NoiseMode,
        Participant,
        PrivacySpec,
        Statistic,
    )
    from mpc.stats.privacy import plan_noise

    spec = JobSpec(
        job_id="l",
        statistic=Statistic.COUNT,
        dataset="d",
        columns=(ColumnBound("x", 0.0, 1.0),),
        frac_bits=0,
        participants=(Participant("a", 10), Participant("b", 10)),
        privacy=PrivacySpec(NoiseMode.CENTRAL, 1.0, 0.0, 1),
    )
    plan = plan_noise(spec)
    assert plan is not None
    (group,) = plan.groups
    t = float(group.laplace_scale or 0)
    ks = np.arange(-2000, 2001)
    pmf = np.exp(-np.abs(ks) / t)
    pmf /= pmf.sum()
    outcome = _noise_outcome(spec, plan, np.array([5.0]), np.array([5.0]))
    assert outcome.error_kind == (EXACT,)
    assert outcome.sigma[0] == pytest.approx(float(np.sqrt(np.sum(pmf * ks * ks))), rel=1e-9)
    assert outcome.epsilon_spent == pytest.approx(1.0)
