"""Queries choose their precision: frac_bits and a fixed-point tolerance per value."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.coordinator.jobs import (
    AUTO_FRAC_BITS_MAX,
    JobRunner,
    PartyLink,
    Query,
    tolerances_from_spec_json,
    value_tolerances,
)
from mpc.protocol.spec import ColumnBound, Statistic
from mpc.ring import DEFAULT_FRAC_BITS
from tests.helpers import party_runtimes
from tests.unit.coordinator.test_jobs import LocalLink

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402

MAX_ROWS = 1000


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, list[str], list[tuple[float, float]]]:
    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    data = np.asarray(bunch.data, dtype=np.float64)
    # Declared bounds [0, ceil(max)]: 'fractal dimension error' gets [0, 1], 'worst area'
    # [0, 4254] (its centred square, ~4.5e6 per row, limits the ring headroom).
    bounds = [(0.0, float(math.ceil(v))) for v in data.max(axis=0)]
    return data, names, bounds


def _links(
    cert_dir: Path,
    tmp_path: Path,
    data: np.ndarray,
    names: list[str],
    bounds: list[tuple[float, float]],
) -> dict[str, PartyLink]:
    parts = np.array_split(data, 3)
    runtimes = party_runtimes(
        cert_dir, tmp_path, parts, names, bounds, dataset="cancer", max_rows=MAX_ROWS
    )
    return {pid: LocalLink(runtime) for pid, runtime in runtimes.items()}


def test_variance_at_default_settings_matches_numpy_for_every_column(
    cert_dir: Path,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    cancer: tuple[np.ndarray, list[str], list[tuple[float, float]]],
) -> None:
    data, names, bounds = cancer
    runner = JobRunner(
        _links(cert_dir, tmp_path, data, names, bounds), pool, job_timeout=60, rpc_timeout=30
    )
    out = runner.run("v", Query(Statistic.VARIANCE, "cancer", tuple(names)), _noop)
    expected = data.var(axis=0, ddof=1)
    # The coordinator chose more bits than the default, as many as the headroom proof allows.
    assert DEFAULT_FRAC_BITS < out.spec.frac_bits <= AUTO_FRAC_BITS_MAX
    np.testing.assert_allclose(out.values, expected, rtol=1e-4, atol=0)
    # One tolerance per value, each covering that value's true error; the small columns'
    # tolerances are far below the largest one (the old single number).
    assert len(out.tolerances) == len(names)
    errors = np.abs(out.values - expected)
    assert np.all(errors <= np.asarray(out.tolerances))
    small = names.index("fractal_dimension_error")
    assert out.tolerances[small] < max(out.tolerances) / 1000
    assert out.tolerance == max(out.tolerances)
    # The stored spec gives the same per-value tolerances (what GetResult sends).
    import json

    assert tolerances_from_spec_json(json.loads(out.spec.canonical())) == out.tolerances


def test_the_old_default_was_off_and_an_explicit_frac_bits_is_honoured(
    cert_dir: Path,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    cancer: tuple[np.ndarray, list[str], list[tuple[float, float]]],
) -> None:
    data, names, bounds = cancer
    runner = JobRunner(
        _links(cert_dir, tmp_path, data, names, bounds), pool, job_timeout=60, rpc_timeout=30
    )
    query = Query(Statistic.VARIANCE, "cancer", tuple(names), frac_bits=DEFAULT_FRAC_BITS)
    out = runner.run("v16", query, _noop)
    assert out.spec.frac_bits == DEFAULT_FRAC_BITS  # the client's (signed) choice stands
    expected = data.var(axis=0, ddof=1)
    relative = np.abs(out.values - expected) / expected
    assert relative.max() > 1e-3  # what the automatic choice fixes
    assert np.all(np.abs(out.values - expected) <= np.asarray(out.tolerances))


def test_sum_and_mean_choose_the_most_bits_that_fit(
    cert_dir: Path,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    cancer: tuple[np.ndarray, list[str], list[tuple[float, float]]],
) -> None:
    data, names, bounds = cancer
    runner = JobRunner(
        _links(cert_dir, tmp_path, data, names, bounds), pool, job_timeout=60, rpc_timeout=30
    )
    column = "fractal_dimension_error"
    out = runner.run("m", Query(Statistic.MEAN, "cancer", (column,)), _noop)
    assert out.spec.frac_bits == AUTO_FRAC_BITS_MAX
    truth = data[:, names.index(column)].mean()
    assert abs(out.values[0] - truth) <= out.tolerances[0] < 1e-11
    out = runner.run("c", Query(Statistic.COUNT, "cancer", (column,)), _noop)
    assert out.spec.frac_bits == DEFAULT_FRAC_BITS  # counts are exact at any setting
    assert out.tolerances == (0.0,)


def test_value_tolerances_follow_each_columns_bounds() -> None:
    from mpc.protocol.spec import JobSpec, Participant

    spec = JobSpec(
        job_id="t",
        statistic=Statistic.VARIANCE,
        dataset="d",
        columns=(ColumnBound("small", 0.0, 1.0), ColumnBound("big", 0.0, 4000.0)),
        frac_bits=16,
        participants=(Participant("a", 100), Participant("b", 100)),
    )
    small, big = value_tolerances(spec)
    half_step = 2.0**-17
    # Fixed point (|dS1|, |dS2| <= n half_step) plus float rounding (16 * 2^-52 * h^2).
    for value, half in ((small, 0.5), (big, 2000.0)):
        fixed = half_step * (2 + 4 * half + 2 * half_step)
        assert value == pytest.approx(fixed + 16 * 2.0**-52 * half * half, rel=1e-9)
    assert big / small > 1000  # the old single tolerance was the big one, for both


# --- honest DP error bars ------------------------------------------------------------------


def _dp_spec(statistic: Statistic, lo: float, hi: float, epsilon: float) -> object:
    from mpc.protocol.spec import JobSpec, NoiseMode, Participant, PrivacySpec

    return JobSpec(
        job_id="dp",
        statistic=statistic,
        dataset="d",
        columns=(ColumnBound("x", lo, hi),),
        frac_bits=16,
        participants=(Participant("a", 1000), Participant("b", 1000)),
        privacy=PrivacySpec(NoiseMode.CENTRAL, epsilon, 1e-6, 1),
    )


def _simulated(draws: int, sds: list[float], seed: int) -> list[np.ndarray]:
    # Test-only Monte Carlo of the post-processing: continuous normals with the noises'
    # variances (the error-bar formulas, not the samplers, are under test here).
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, sd, draws) for sd in sds]


def test_mean_sigma_includes_the_count_noise() -> None:
    from mpc.coordinator.jobs import DELTA_METHOD, _noise_outcome
    from mpc.stats.privacy import plan_noise

    lo, hi, n, values_mean = 0.0, 10.0, 400, 9.0
    spec = _dp_spec(Statistic.MEAN, lo, hi, 1.0)
    plan = plan_noise(spec)  # type: ignore[arg-type]
    assert plan is not None
    scale = 2.0**16
    sums, count = plan.groups
    sd_s = math.sqrt(float(plan.total_variance(sums))) / scale
    sd_n = math.sqrt(float(plan.total_variance(count))) / scale
    centred = n * (values_mean - (lo + hi) / 2)
    z_s, z_n = _simulated(200_000, [sd_s, sd_n], 1)
    released = np.clip((lo + hi) / 2 + (centred + z_s) / np.maximum(1, np.rint(n + z_n)), lo, hi)
    outcome = _noise_outcome(
        spec,  # type: ignore[arg-type]
        plan,
        np.array([centred, float(n)]),
        np.array([values_mean]),
    )
    empirical = float(np.std(released - values_mean))
    assert outcome.error_kind == (DELTA_METHOD,)
    # The old sigma (sum noise / n) was far too low here; the delta method is close.
    assert sd_s / n < 0.85 * empirical
    assert outcome.sigma[0] == pytest.approx(empirical, rel=0.1)
    coverage = np.mean(np.abs(released - values_mean) <= outcome.error_bound_95[0])
    assert coverage >= 0.95


def test_variance_sigma_is_the_delta_method_not_the_worst_case() -> None:
    from mpc.coordinator.jobs import DELTA_METHOD, _noise_outcome
    from mpc.stats.privacy import plan_noise

    lo, hi, n = 0.0, 10.0, 2000
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(6.0, 1.0, n), lo, hi)
    m, half = (lo + hi) / 2, (hi - lo) / 2
    s1, s2 = float(np.sum(x - m)), float(np.sum((x - m) ** 2))
    truth = float(np.var(x, ddof=1))
    spec = _dp_spec(Statistic.VARIANCE, lo, hi, 1.0)
    plan = plan_noise(spec)  # type: ignore[arg-type]
    assert plan is not None
    scale = 2.0**16
    sds = [math.sqrt(float(plan.total_variance(g))) / scale for g in plan.groups]
    z1, z2, z_n = _simulated(200_000, sds, 2)
    noisy_n = np.maximum(2, np.rint(n + z_n))
    released = np.clip((s2 + z2 - (s1 + z1) ** 2 / noisy_n) / (noisy_n - 1), 0, half * half)
    outcome = _noise_outcome(
        spec,  # type: ignore[arg-type]
        plan,
        np.array([s1, s2, float(n)]),
        np.array([truth]),
    )
    empirical = float(np.std(released - truth))
    old_proxy = math.sqrt(sds[1] ** 2 + (2 * half * sds[0]) ** 2 + (half * half * sds[2]) ** 2)
    assert old_proxy / (n - 1) > 1.5 * empirical  # the worst-case proxy was far too high
    assert outcome.error_kind == (DELTA_METHOD,)
    assert outcome.sigma[0] == pytest.approx(empirical, rel=0.1)
    coverage = np.mean(np.abs(released - truth) <= outcome.error_bound_95[0])
    assert coverage >= 0.95


def test_sums_report_exact_sigma() -> None:
    from mpc.coordinator.jobs import EXACT, _noise_outcome
    from mpc.stats.privacy import plan_noise

    spec = _dp_spec(Statistic.SUM, 0.0, 10.0, 1.0)
    plan = plan_noise(spec)  # type: ignore[arg-type]
    assert plan is not None
    outcome = _noise_outcome(spec, plan, np.array([100.0]), np.array([100.0]))  # type: ignore[arg-type]
    assert outcome.error_kind == (EXACT,)
    assert outcome.sigma[0] == pytest.approx(
        math.sqrt(float(plan.total_variance(plan.groups[0]))) / 2.0**16
    )
