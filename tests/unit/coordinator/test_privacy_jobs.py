"""DP jobs with in-process parties: distributed noise, budgets, refusals before data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mpc import dp
from mpc.config import BudgetConfig, ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.coordinator.jobs import JobRunner, PartyLink, Query
from mpc.errors import PartyFailedError, PrivacyBudgetError, QueryError
from mpc.ledger import Ledger
from mpc.party.runtime import PartyRuntime
from mpc.protocol.spec import ColumnBound, NoiseMode, Statistic
from mpc.stats.privacy import plan_noise
from tests.helpers import identity
from tests.unit.coordinator.test_jobs import LocalLink


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


def _runtime(
    cert_dir: Path,
    tmp_path: Path,
    pid: str,
    rows: int = 4,
    budget: BudgetConfig | None = None,
    ledger: bool = True,
    n: int = 3,
    min_colluders: int | None = None,
) -> PartyRuntime:
    path = tmp_path / f"{pid}.csv"
    smoker = np.arange(rows) % 2
    np.savetxt(
        path,
        np.column_stack([smoker * 40 + 20, smoker]),
        delimiter=",",
        header="age,smoker",
        comments="",
    )
    config = PartyConfig(
        require_signed_queries=False,  # these tests drive the runner without a client
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        datasets=(
            DatasetConfig(
                "health",
                path,
                100,
                columns=(ColumnConfig("age", 0, 100), ColumnConfig("smoker", 0, 1)),
                budget=budget,
                cohort=None if budget else tuple("abcde"[:n]),
            ),
        ),
        # Each charge is an fsync; the statistical test runs hundreds of jobs without one.
        ledger=tmp_path / f"{pid}.ledger.sqlite" if ledger else None,
        min_colluders=min_colluders,
    )
    return PartyRuntime(config, identity(cert_dir, pid))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _links(cert_dir: Path, tmp_path: Path, n: int, **kw: object) -> dict[str, PartyLink]:
    return {
        pid: LocalLink(_runtime(cert_dir, tmp_path, pid, n=n, **kw))  # type: ignore[arg-type]
        for pid in "abcde"[:n]
    }


def _convolved_pmf(sigma_p_sq: Fraction, parties: int, support: np.ndarray) -> np.ndarray:
    """Exact pmf of the sum of ``parties`` i.i.d. N_Z(0, sigma_p^2), on ``support``."""
    half = int(30 * math.sqrt(sigma_p_sq)) + 1
    grid = np.arange(-half, half + 1)
    one = dp.discrete_gaussian_pmf(grid, sigma_p_sq)
    total = one
    for _ in range(parties - 1):
        total = np.convolve(total, one)
    offset = parties * half
    return total[support + offset]


@pytest.mark.slow
@pytest.mark.parametrize(("n", "t"), [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_distributed_noise_matches_the_sum_of_party_shares(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, n: int, t: int
) -> None:
    """Released values of a fixed input follow the convolution of n per-party discrete
    Gaussians N_Z(0, sigma^2/(n-t)): each party really adds its own share, sized for t."""
    # An honest-majority consortium: every party's policy accepts noise sized for t.
    links = _links(cert_dir, tmp_path, n, ledger=False, min_colluders=t)
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5, colluders=t)
    query = Query(
        Statistic.SUM,
        "health",
        ("smoker",),
        (ColumnBound("smoker", 0, 1),),
        frac_bits=0,
        noise=NoiseMode.DISTRIBUTED,
        epsilon=3.0,
        delta=1e-3,
    )
    exact = 2 * n  # each party holds 4 rows, two smokers
    runs = 250
    released = np.array([runner.run(f"j{i}", query, _noop).values[0] for i in range(runs)]) - exact
    spec = runner._build_spec("probe", query, {p: link.describe(1) for p, link in links.items()})
    plan = plan_noise(spec)
    assert plan is not None
    sigma_p_sq = plan.groups[0].sigma_sq
    assert sigma_p_sq == dp.distributed_sigma_sq(
        dp.sigma_sq_for_rho(1, dp.rho_for_epsilon(3.0, 1e-3) * Fraction(999_999, 1_000_000)),
        n,
        t,
    ) or plan.cost.rho <= dp.rho_for_epsilon(3.0, 1e-3)
    # Variance: sample variance against n * sigma_p^2 (chi-square, two-sided, 1e-6).
    expected_var = n * dp.discrete_gaussian_variance(sigma_p_sq)
    statistic = (runs - 1) * np.var(released, ddof=1) / expected_var
    assert stats.chi2.sf(statistic, runs - 1) > 5e-7
    assert stats.chi2.cdf(statistic, runs - 1) > 5e-7
    # Shape: chi-square goodness of fit against the exact convolved pmf, tails pooled.
    width = int(4 * math.sqrt(expected_var)) + 1
    support = np.arange(-width, width + 1)
    pmf = _convolved_pmf(sigma_p_sq, n, support)
    observed = np.array([np.sum(released == k) for k in support], dtype=float)
    expected = pmf * runs
    tail_obs = runs - observed.sum()
    tail_exp = runs - expected.sum()
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum() + tail_obs)
    exp = np.append(expected[keep], expected[~keep].sum() + tail_exp)
    _, p_value = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert p_value > 1e-6


def test_budget_is_checked_before_any_data_is_read(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path, 3, budget=BudgetConfig(0.5, 1e-6))
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5)
    query = Query(
        Statistic.MEAN, "health", ("age",), noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-6
    )
    with pytest.raises(PartyFailedError, match=r"dataset 'health': this job would exceed") as info:
        runner.run("j1", query, _noop)
    assert "remaining" in str(info.value)
    assert "not a number" not in str(info.value)


def test_budgeted_dataset_refuses_exact_and_central_queries(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path, 3, budget=BudgetConfig(5.0, 1e-6))
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5)
    # The coordinator mirrors the parties' published dp-only policy and refuses early.
    with pytest.raises(QueryError, match="dp-only at party 'a'"):
        runner.run("j1", Query(Statistic.COUNT, "health"), _noop)
    central = Query(Statistic.COUNT, "health", noise=NoiseMode.CENTRAL, epsilon=1.0, delta=1e-6)
    with pytest.raises(PartyFailedError, match="requires distributed noise"):
        runner.run("j2", central, _noop)


def test_coordinator_budget_refuses_before_parties_see_the_job(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path, 3)
    ledger = Ledger(tmp_path / "coordinator.sqlite")
    runner = JobRunner(
        links,
        pool,
        job_timeout=10,
        rpc_timeout=5,
        ledger=ledger,
        budgets={"health": BudgetConfig(1.0, 1e-6)},
    )
    query = Query(Statistic.COUNT, "health", noise=NoiseMode.CENTRAL, epsilon=0.9, delta=1e-6)
    runner.run("j1", query, _noop)
    with pytest.raises(PrivacyBudgetError, match=r"coordinator: dataset 'health'.*remaining"):
        runner.run("j2", query, _noop)
    for link in links.values():
        assert isinstance(link, LocalLink)
        assert "j2" not in link.runtime._jobs


def test_central_noise_and_pure_epsilon(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path, 3)
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5)
    for delta in (1e-6, 0.0):
        out = runner.run(
            f"j{delta}",
            Query(
                Statistic.SUM, "health", ("age",), noise=NoiseMode.CENTRAL, epsilon=2.0, delta=delta
            ),
            _noop,
        )
        assert out.noise is not None
        assert out.noise.error_bound_95[0] > 0
        assert abs(out.values[0] - 3 * 120) < 20 * out.noise.error_bound_95[0]
    with pytest.raises(QueryError, match="needs delta > 0"):
        runner.run(
            "jx",
            Query(
                Statistic.SUM,
                "health",
                ("age",),
                noise=NoiseMode.DISTRIBUTED,
                epsilon=1.0,
                delta=0.0,
            ),
            _noop,
        )


def test_vector_sum_has_no_dp(cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor) -> None:
    links = _links(cert_dir, tmp_path, 3)
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5)
    with pytest.raises(QueryError, match="no record-level sensitivity"):
        runner.run(
            "j",
            Query(Statistic.VECTOR_SUM, "health", noise=NoiseMode.CENTRAL, epsilon=1.0, delta=1e-6),
            _noop,
        )


def test_noisy_results_stay_within_their_error_bound_mostly(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = _links(cert_dir, tmp_path, 3, rows=50)
    runner = JobRunner(links, pool, job_timeout=10, rpc_timeout=5)
    query = Query(
        Statistic.MEAN, "health", ("age",), noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-6
    )
    exact_mean = 40.0  # ages alternate 20 and 60
    inside = 0
    for i in range(40):
        out = runner.run(f"j{i}", query, _noop)
        assert out.noise is not None
        assert 0 <= out.values[0] <= 100  # clamped to the declared bounds
        inside += abs(out.values[0] - exact_mean) <= out.noise.error_bound_95[0]
    assert inside >= 34  # >= 95% expected; P(fewer than 34 of 40) < 1e-3


def test_plan_is_identical_for_every_party() -> None:
    from mpc.protocol.spec import JobSpec, Participant, PrivacySpec

    spec = JobSpec(
        "j",
        Statistic.MEAN,
        "health",
        (ColumnBound("age", 0, 100),),
        16,
        (Participant("a", 10), Participant("b", 10)),
        privacy=PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 1),
    )
    assert plan_noise(spec) == plan_noise(replace(spec))
