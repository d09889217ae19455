from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mpc import dp
from mpc.errors import PrivacyBudgetError
from mpc.ledger import Ledger

DELTA = 1e-6


def _budget_for(cost: dp.PrivacyCost, jobs: int) -> dp.Budget:
    total = dp.PrivacyCost(rho_units=cost.rho_units * jobs)
    return dp.Budget(
        epsilon_units=dp.accountant.units_down(total.epsilon(DELTA)),
        delta=dp.Budget.from_epsilon_delta(1, DELTA).delta,
    )


def test_concurrent_charges_never_overspend(tmp_path: Path) -> None:
    cost = dp.PrivacyCost.from_rho(dp.rho_for_epsilon(0.5, DELTA))
    budget = _budget_for(cost, 10)
    ledgers = [Ledger(tmp_path / "ledger.sqlite") for _ in range(4)]  # several connections
    results: list[bool] = []
    lock = threading.Lock()

    def charge(i: int) -> None:
        try:
            ledgers[i % 4].charge("health", f"job-{i}", cost, budget)
            ok = True
        except PrivacyBudgetError:
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=charge, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 10
    assert ledgers[0].status("health", budget).charges == 10


def test_refusal_names_dataset_and_remaining_budget(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    budget = dp.Budget.from_epsilon_delta(1.0, DELTA)
    cost = dp.PrivacyCost.from_rho(dp.rho_for_epsilon(0.8, DELTA))
    ledger.charge("health", "j1", cost, budget)
    with pytest.raises(PrivacyBudgetError, match=r"dataset 'health'.*remaining 0\.\d+") as info:
        ledger.charge("health", "j2", cost, budget)
    assert "spent epsilon 0.8" in str(info.value)
    with pytest.raises(PrivacyBudgetError, match="already charged"):
        ledger.charge("health", "j1", dp.PrivacyCost(), budget)


def test_ledger_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    from fractions import Fraction

    cost = dp.PrivacyCost.from_rho(Fraction(1, 100))
    Ledger(path).charge("d", "j1", cost, None)
    reopened = Ledger(path)
    assert reopened.spent("d") == cost
    assert reopened.status("d", None).budget_epsilon is None
