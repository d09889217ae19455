"""Variance and histogram jobs with in-process parties: exact values, DP noise, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mpc.config import ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.coordinator.jobs import JobRunner, PartyLink, Query, query_from_json
from mpc.errors import QueryError
from mpc.party.runtime import PartyRuntime
from mpc.protocol.spec import (
    MAX_HISTOGRAM_BINS,
    ColumnBound,
    JobSpec,
    NoiseMode,
    Participant,
    PrivacySpec,
    Statistic,
)
from mpc.stats.privacy import plan_noise
from mpc.transport.convert import spec_from_proto, spec_to_proto
from tests.helpers import identity
from tests.unit.coordinator.test_jobs import LocalLink

BOUNDS = {"age": (0.0, 120.0), "score": (-10.0, 10.0)}


def _table(index: int, rows: int) -> np.ndarray:
    grid = np.arange(rows, dtype=np.float64)
    age = 5 + (grid * 7.3 + index * 13) % 130  # some ages above 120: clamping matters
    score = np.sin(grid + index) * 12  # some scores outside [-10, 10]
    return np.column_stack([age, score])


DATA = {pid: _table(i, 30 + 7 * i) for i, pid in enumerate("abc")}


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


def _runtime(cert_dir: Path, tmp_path: Path, pid: str) -> PartyRuntime:
    path = tmp_path / f"{pid}.csv"
    np.savetxt(path, DATA[pid], delimiter=",", header="age,score", comments="", fmt="%.17g")
    config = PartyConfig(
        require_signed_queries=False,  # these tests drive the runner without a client
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        datasets=(
            DatasetConfig(
                "health",
                path,
                1000,
                columns=tuple(ColumnConfig(c, lo, hi) for c, (lo, hi) in BOUNDS.items()),
                cohort=tuple(sorted(DATA)),
            ),
        ),
    )
    return PartyRuntime(config, identity(cert_dir, pid))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


@pytest.fixture
def runner(cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor) -> JobRunner:
    links: dict[str, PartyLink] = {
        pid: LocalLink(_runtime(cert_dir, tmp_path, pid)) for pid in DATA
    }
    return JobRunner(links, pool, job_timeout=20.0, rpc_timeout=10.0)


def _pooled(column: int) -> np.ndarray:
    return np.concatenate([d[:, column] for d in DATA.values()])


def test_variance_matches_numpy(runner: JobRunner) -> None:
    out = runner.run("v1", Query(Statistic.VARIANCE, "health", ("age", "score")), _noop)
    expected = [
        np.var(np.clip(_pooled(0), *BOUNDS["age"]), ddof=1),
        np.var(np.clip(_pooled(1), *BOUNDS["score"]), ddof=1),
    ]
    assert out.labels == ["age", "score"]
    assert out.noise is None
    assert out.values.tolist() == pytest.approx(expected, abs=out.tolerance)
    assert out.values.tolist() == pytest.approx(expected, rel=1e-5)
    # Query bounds override the schema (and clamp at every party).
    out = runner.run(
        "v2", Query(Statistic.VARIANCE, "health", ("age",), (ColumnBound("age", 20, 60),)), _noop
    )
    assert out.values[0] == pytest.approx(np.var(np.clip(_pooled(0), 20, 60), ddof=1), rel=1e-5)


def test_histogram_matches_numpy_with_outliers_clamped(runner: JobRunner) -> None:
    edges = (10.0, 25.0, 40.0, 70.0, 100.0)
    out = runner.run("h1", Query(Statistic.HISTOGRAM, "health", ("age",), bin_edges=edges), _noop)
    ages = np.clip(_pooled(0), edges[0], edges[-1])  # out-of-range values: first/last bin
    expected, _ = np.histogram(ages, bins=edges)
    assert out.values.tolist() == expected.astype(float).tolist()
    assert out.values.sum() == _pooled(0).size
    assert out.labels == ["age"]
    assert out.tolerance == 0.0
    assert out.spec.bin_edges == edges
    assert out.spec.columns == (ColumnBound("age", 10.0, 100.0),)
    # Values exactly on an edge go to the bin on the right; the last edge to the last bin.
    edges = (-10.0, -1.0, 0.0, 0.5, 10.0)
    out = runner.run("h2", Query(Statistic.HISTOGRAM, "health", ("score",), bin_edges=edges), _noop)
    expected, _ = np.histogram(np.clip(_pooled(1), -10, 10), bins=edges)
    # An exact cell of 1 or 2 rows is suppressed (NaN) by the coordinator's min_cell_count.
    assert 0 < expected[2] < 3
    shown = np.where((expected > 0) & (expected < 3), np.nan, expected.astype(float))
    np.testing.assert_array_equal(out.values, shown)


def test_small_cell_suppression_is_configurable_and_skips_dp(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    links = {pid: LocalLink(_runtime(cert_dir, tmp_path, pid)) for pid in sorted(DATA)}
    edges = (-10.0, -1.0, 0.0, 0.5, 10.0)
    query = Query(Statistic.HISTOGRAM, "health", ("score",), bin_edges=edges)
    expected, _ = np.histogram(np.clip(_pooled(1), -10, 10), bins=edges)
    off = JobRunner(links, pool, job_timeout=20.0, rpc_timeout=10.0, min_cell_count=0)
    assert off.run("h-off", query, _noop).values.tolist() == expected.astype(float).tolist()
    strict = JobRunner(links, pool, job_timeout=20.0, rpc_timeout=10.0, min_cell_count=100)
    values = strict.run("h-strict", query, _noop).values
    assert np.isnan(values[expected < 100]).all() and not np.isnan(values[expected >= 100]).any()
    noisy = replace(query, noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-6)
    assert not np.isnan(strict.run("h-dp", noisy, _noop).values).any()


def test_dp_variance_is_within_its_bounds(runner: JobRunner) -> None:
    exact = np.var(np.clip(_pooled(0), *BOUNDS["age"]), ddof=1)
    for mode in (NoiseMode.DISTRIBUTED, NoiseMode.CENTRAL):
        query = Query(Statistic.VARIANCE, "health", ("age",), noise=mode, epsilon=5.0, delta=1e-6)
        out = runner.run(f"dpv-{mode.value}", query, _noop)
        assert out.noise is not None
        assert 0.0 <= out.values[0] <= 60.0**2  # clamped to [0, ((U-L)/2)^2]
        assert out.noise.epsilon_spent <= 5.0 + 1e-9
        assert out.noise.error_bound_95[0] > 0
        # Generous: the variance of ~110 rows under epsilon 5 is within a factor of the truth.
        assert abs(out.values[0] - exact) <= 3 * out.noise.error_bound_95[0] + 1e-9
    spec = out.spec
    plan = plan_noise(spec)
    assert plan is not None
    assert [g.name for g in plan.groups] == ["centred sum", "centred square", "count"]
    assert [(g.start, g.stop) for g in plan.groups] == [(0, 1), (1, 2), (2, 3)]
    f = spec.frac_bits
    assert [g.sensitivity for g in plan.groups] == [60 << f, 3600 << f, 1 << f]


def test_dp_histogram_counts_are_non_negative_integers(runner: JobRunner) -> None:
    edges = tuple(float(e) for e in range(0, 121, 10))
    expected, _ = np.histogram(np.clip(_pooled(0), 0, 120), bins=edges)
    for mode in (NoiseMode.DISTRIBUTED, NoiseMode.CENTRAL):
        query = Query(
            Statistic.HISTOGRAM,
            "health",
            ("age",),
            noise=mode,
            epsilon=2.0,
            delta=1e-6,
            bin_edges=edges,
        )
        out = runner.run(f"dph-{mode.value}", query, _noop)
        assert out.noise is not None
        assert out.values.size == len(edges) - 1
        assert np.all(out.values >= 0)
        assert np.all(out.values == np.rint(out.values))
        (bound,) = out.noise.error_bound_95
        assert len(out.noise.sigma) == 1
        # 12 bins at 95% each: allow the union bound's slack.
        assert np.all(np.abs(out.values - expected) <= 3 * bound)
    plan = plan_noise(out.spec)
    assert plan is not None
    (group,) = plan.groups
    assert (group.start, group.stop, group.sensitivity) == (0, 12, 1 << out.spec.frac_bits)


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ((), "at least 2 bin edges"),
        ((1.0,), "at least 2 bin edges"),
        ((0.0, 1.0, 1.0), "strictly increasing"),
        ((2.0, 1.0), "strictly increasing"),
        ((0.0, float("inf")), "finite"),
        ((float("nan"), 1.0), "finite"),
    ],
)
def test_bad_bin_edges_are_refused(
    runner: JobRunner, edges: tuple[float, ...], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        runner.run("bad", Query(Statistic.HISTOGRAM, "health", ("age",), bin_edges=edges), _noop)


def test_bad_histogram_queries_are_refused(runner: JobRunner) -> None:
    too_many = tuple(float(i) for i in range(MAX_HISTOGRAM_BINS + 2))
    cases = [
        (Query(Statistic.HISTOGRAM, "health", ("age",), bin_edges=too_many), "at most"),
        (Query(Statistic.HISTOGRAM, "health", ("age", "score"), bin_edges=(0, 1)), "one"),
        (Query(Statistic.HISTOGRAM, "health", (), bin_edges=(0, 1)), "one"),
        (Query(Statistic.SUM, "health", ("age",), bin_edges=(0, 1)), "only for histogram"),
        (
            Query(
                Statistic.HISTOGRAM,
                "health",
                ("age",),
                (ColumnBound("age", 0, 1),),
                bin_edges=(0, 1),
            ),
            "bounds",
        ),
        (Query(Statistic.VARIANCE, "health", ()), "at least one"),
        (
            Query(
                Statistic.VARIANCE,
                "health",
                ("age",),
                (ColumnBound("age", 5, 5),),
                noise=NoiseMode.CENTRAL,
                epsilon=1.0,
                delta=1e-6,
            ),
            "lo == hi",
        ),
    ]
    for query, message in cases:
        with pytest.raises(QueryError, match=message):
            runner.run("bad", query, _noop)


def test_bin_edges_are_signed_and_travel(runner: JobRunner) -> None:
    parties = (Participant("a", 10), Participant("b", 10))
    column = (ColumnBound("age", 0.0, 3.0),)
    one = JobSpec("j", Statistic.HISTOGRAM, "d", column, 16, parties, bin_edges=(0, 1, 3))
    two = JobSpec("j", Statistic.HISTOGRAM, "d", column, 16, parties, bin_edges=(0, 2, 3))
    assert one.digest() != two.digest()
    assert spec_from_proto(spec_to_proto(one)) == one
    assert spec_from_proto(spec_to_proto(one)).digest() == one.digest()
    # Other statistics keep their canonical encoding (no bin_edges key).
    plain = JobSpec("j", Statistic.SUM, "d", column, 16, parties)
    assert b"bin_edges" not in plain.canonical()
    with pytest.raises(QueryError, match="first and last bin edges"):
        JobSpec("j", Statistic.HISTOGRAM, "d", column, 16, parties, bin_edges=(0, 1, 2))
    private = JobSpec(
        "j",
        Statistic.VARIANCE,
        "d",
        column,
        16,
        parties,
        privacy=PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 1),
    )
    assert spec_from_proto(spec_to_proto(private)) == private
    # Job records keep the edges.
    query = Query(Statistic.HISTOGRAM, "d", ("age",), bin_edges=(0.0, 0.1, 3.0))
    assert query_from_json(query.to_json()) == query
