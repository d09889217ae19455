"""Differential privacy with real processes: budgets, ledgers across restarts, concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mpc import dp
from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import JobFailedError
from mpc.protocol.spec import JobSpec, NoiseMode, Participant, PrivacySpec, Statistic
from mpc.stats.privacy import plan_noise
from tests.integration.conftest import BOUNDS, party_table, write_party_csv

pytestmark = pytest.mark.integration

EPSILON, DELTA = 0.5, 1e-6


def _cost_of_one_count(parties: list[str]) -> dp.PrivacyCost:
    spec = JobSpec(
        "probe",
        Statistic.COUNT,
        "people",
        (),
        16,
        tuple(Participant(p, 10_000) for p in parties),
        privacy=PrivacySpec(NoiseMode.DISTRIBUTED, EPSILON, DELTA, len(parties) - 1),
    )
    plan = plan_noise(spec)
    assert plan is not None
    return plan.cost


def _budget_for(cost: dp.PrivacyCost, jobs: int) -> float:
    """An epsilon budget that fits exactly ``jobs`` copies of ``cost`` and not one more."""
    total = dp.PrivacyCost(rho_units=cost.rho_units * jobs)
    # Half a ledger unit above the exact grid value, so the float in the config rounds down
    # onto that value and not one unit below it.
    epsilon = float(total.epsilon(DELTA)) + 0.5 / dp.accountant.UNITS_PER_ONE
    budget = dp.Budget.from_epsilon_delta(epsilon, DELTA)
    more = dp.PrivacyCost(rho_units=cost.rho_units * (jobs - 1))
    assert budget.allows(more, cost)
    assert not budget.allows(total, cost)
    return epsilon


def _cluster(
    workdir: Path, party_budget: float | None, coordinator_budget: float | None, n: int = 3
) -> LocalCluster:
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    datasets = {}
    for index, pid in enumerate("abc"[:n]):
        path = workdir / "data" / f"{pid}.csv"
        write_party_csv(path, party_table(index, 30))
        datasets[pid] = {
            "people": DatasetFile(
                path,
                10_000,
                bounds=BOUNDS,
                budget=None if party_budget is None else (party_budget, DELTA),
            )
        }
    budgets = {} if coordinator_budget is None else {"people": (coordinator_budget, DELTA)}
    return LocalCluster(workdir, datasets, budgets=budgets, log_level="DEBUG")


def test_twenty_concurrent_queries_against_a_budget_for_ten_spend_ten(tmp_path: Path) -> None:
    cost = _cost_of_one_count(["a", "b", "c"])
    with _cluster(
        tmp_path, party_budget=_budget_for(cost, 10) * 2, coordinator_budget=_budget_for(cost, 10)
    ) as cluster:

        def one(_: int) -> bool:
            with cluster.client() as client:
                try:
                    client.count("people", epsilon=EPSILON, delta=DELTA)
                    return True
                except JobFailedError as exc:
                    assert "exceed the privacy budget" in str(exc)
                    assert "dataset 'people'" in str(exc)
                    return False

        with ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(one, range(20)))
        assert sum(outcomes) == 10
        with cluster.client() as client:
            mine, parties = client.budgets()
        assert mine[0].charges == 10
        assert mine[0].remaining_epsilon is not None
        for party in parties:
            assert party.budgets[0].charges == 10


def test_ledgers_survive_restarts_and_parties_enforce_their_own(tmp_path: Path) -> None:
    cost = _cost_of_one_count(["a", "b", "c"])
    with _cluster(tmp_path, party_budget=_budget_for(cost, 2), coordinator_budget=None) as cluster:
        with cluster.client() as client:
            for _ in range(2):
                result = client.count("people", epsilon=EPSILON, delta=DELTA)
                assert result.privacy is not None and result.privacy.noise == "distributed"
            before = client.budgets()
        # Restart everybody: the ledgers are on disk.
        cluster.stop()
        cluster.processes.clear()
        for pid in cluster.party_ids:
            cluster.start_party(pid)
            cluster._wait_ready(pid)
        cluster.start_coordinator()
        with cluster.client() as client:
            assert client.budgets() == before
            with pytest.raises(JobFailedError) as info:
                client.count("people", epsilon=EPSILON, delta=DELTA)
    message = str(info.value)
    assert "party 'a'" in message or "party 'b'" in message or "party 'c'" in message
    assert "exceed the privacy budget" in message and "remaining" in message


def test_cli_dp_query_and_budget_show(tmp_path: Path) -> None:
    with _cluster(tmp_path, party_budget=10.0, coordinator_budget=10.0) as cluster:
        base = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mpc",
                "query",
                "mean",
                "--dataset",
                "people",
                "--column",
                "age",
                "--epsilon",
                "1",
                *base,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        privacy = result["privacy"]
        assert privacy["noise"] == "distributed"
        assert 0 < privacy["epsilon_spent"] <= 1.0
        assert privacy["error_bound_95"]["age"] > 0
        assert BOUNDS["age"][0] <= result["values"]["age"] <= BOUNDS["age"][1]
        out = subprocess.run(
            [sys.executable, "-m", "mpc", "budget", "show", *base, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        budgets = json.loads(out.stdout)
        assert budgets["coordinator"][0]["dataset"] == "people"
        assert budgets["coordinator"][0]["charges"] == 1
        assert set(budgets["parties"]) == {"a", "b", "c"}
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mpc",
                "query",
                "sum",
                "--dataset",
                "people",
                "--column",
                "age",
                *base,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        assert "is dp-only at party" in out.stderr


def test_dp_mean_error_bound_is_honest(tmp_path: Path) -> None:
    import numpy as np

    with _cluster(tmp_path, party_budget=None, coordinator_budget=None) as cluster:
        paths = [cluster.datasets[p]["people"].path for p in cluster.party_ids]
        ages = np.clip(
            np.concatenate([np.loadtxt(p, delimiter=",", skiprows=1)[:, 0] for p in paths]),
            *BOUNDS["age"],
        )
        with cluster.client() as client:
            inside = 0
            for _ in range(10):
                r = client.mean("people", ["age"], epsilon=2.0, bounds={"age": BOUNDS["age"]})
                assert r.privacy is not None
                inside += abs(r.value - ages.mean()) <= r.privacy.error_bound_95["age"]
    assert inside >= 7  # 95% each; P(<= 6 of 10) < 1e-3
