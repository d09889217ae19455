"""Filters and groups end to end with in-process parties: results equal pandas on the pooled
rows, the parties' exact_filters and category policies, DP grouped jobs, small cells."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mpc.config import ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.coordinator.jobs import JobRunner, PartyLink, Query
from mpc.errors import MpcError, QueryError
from mpc.party.runtime import PartyRuntime
from mpc.protocol.frame import GroupKey
from mpc.protocol.spec import NoiseMode, Statistic
from mpc.protocol.where import parse_where
from mpc.stats import definition
from mpc.stats.privacy import plan_noise
from tests.helpers import identity
from tests.unit.coordinator.test_jobs import LocalLink

PARTIES = ("a", "b", "c")
SMOKER = GroupKey("smoker", categories=("yes", "no"))
AGE_BANDS = GroupKey("age", edges=(0.0, 40.0, 65.0, 120.0))


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    out = {}
    for i, pid in enumerate(PARTIES):
        n = 40 + 10 * i
        out[pid] = pd.DataFrame(
            {
                "age": rng.integers(18, 90, n).astype(float),
                "bmi": np.round(rng.normal(27, 4, n), 1),
                "smoker": rng.choice(["yes", "no", "maybe"], n, p=[0.3, 0.6, 0.1]),
            }
        )
    return out


FRAMES = _frames()
POOLED = pd.concat(FRAMES.values(), ignore_index=True)


def _runtime(
    cert_dir: Path, tmp_path: Path, pid: str, *, exact_filters: bool, budget: bool = False
) -> PartyRuntime:
    path = tmp_path / f"{pid}.csv"
    FRAMES[pid].to_csv(path, index=False)
    config = PartyConfig(
        require_signed_queries=False,
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        ledger=tmp_path / f"{pid}.db" if budget else None,
        datasets=(
            DatasetConfig(
                "health",
                path,
                1000,
                columns=(
                    ColumnConfig("age", 0, 120),
                    ColumnConfig("bmi", 10, 60),
                    ColumnConfig("smoker", categories=("yes", "no", "maybe")),
                ),
                cohort=PARTIES,
                exact_filters=exact_filters,
            ),
        ),
    )
    return PartyRuntime(config, identity(cert_dir, pid))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _runner(
    cert_dir: Path,
    tmp_path: Path,
    pool: ThreadPoolExecutor,
    *,
    exact_filters: bool = True,
    min_cell_count: int = 1,
    budget: bool = False,
) -> JobRunner:
    links: dict[str, PartyLink] = {
        pid: LocalLink(
            _runtime(cert_dir, tmp_path, pid, exact_filters=exact_filters, budget=budget)
        )
        for pid in PARTIES
    }
    return JobRunner(links, pool, job_timeout=20.0, rpc_timeout=10.0, min_cell_count=min_cell_count)


def _noop(stage: str, message: str, fraction: float) -> None:
    pass


def _table(out_values: np.ndarray, cells: int) -> np.ndarray:
    return np.asarray(out_values).reshape(cells, -1)


def _expected_groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
    return [rows[rows.smoker == s] for s in SMOKER.categories]


def test_grouped_and_filtered_statistics_equal_pandas(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool)
    where = parse_where("age >= 30 and (bmi < 30 or smoker in ('yes'))")
    rows = POOLED[(POOLED.age >= 30) & ((POOLED.bmi < 30) | (POOLED.smoker == "yes"))]
    groups = _expected_groups(rows)
    cols = ("age", "bmi")

    def run(statistic: Statistic, columns: tuple[str, ...] = cols, **kw: object) -> np.ndarray:
        query = Query(statistic, "health", columns, where=where, group_by=(SMOKER,), **kw)  # type: ignore[arg-type]
        out = runner.run(f"j-{statistic.value}", query, _noop)
        return np.asarray(out.values)

    sums = _table(run(Statistic.SUM), 2)
    counts = run(Statistic.COUNT, ())
    means = _table(run(Statistic.MEAN), 2)
    variances = _table(run(Statistic.VARIANCE), 2)
    for g, part in enumerate(groups):
        assert counts[g] == len(part)
        np.testing.assert_allclose(sums[g], part[list(cols)].sum().to_numpy(), atol=1e-3)
        np.testing.assert_allclose(means[g], part[list(cols)].mean().to_numpy(), atol=1e-6)
        np.testing.assert_allclose(variances[g], part[list(cols)].var().to_numpy(), atol=1e-5)
    edges = (0.0, 20.0, 40.0, 60.0)
    hist = _table(
        run(Statistic.HISTOGRAM, ("bmi",), bin_edges=edges),
        2,
    )
    for g, part in enumerate(groups):
        expected, _ = np.histogram(np.clip(part.bmi, edges[0], edges[-1]), bins=edges)
        assert hist[g].tolist() == expected.tolist()


def test_binned_key_and_two_keys(cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor) -> None:
    runner = _runner(cert_dir, tmp_path, pool)
    query = Query(Statistic.MEAN, "health", ("bmi",), group_by=(AGE_BANDS, SMOKER))
    out = runner.run("j-two", query, _noop)
    band = pd.cut(POOLED.age, AGE_BANDS.edges, right=False, labels=False)
    expected = POOLED.groupby([band, POOLED.smoker]).bmi.mean()
    values = out.values.reshape(3, 2)
    for b in range(3):
        for s, name in enumerate(SMOKER.categories):
            assert values[b, s] == pytest.approx(expected.loc[(b, name)], abs=1e-6)
    layout = definition(Statistic.MEAN).layout
    assert layout is not None
    table = layout(out.spec)
    assert table.index_names == ["age", "smoker"]
    assert table.index[:2] == [("[0, 40)", "yes"), ("[0, 40)", "no")]


def test_empty_cell_gives_nan_not_a_failure(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool)
    where = parse_where("age > 1000")  # no row anywhere
    out = runner.run(
        "j-empty", Query(Statistic.MEAN, "health", ("bmi",), where=where, group_by=(SMOKER,)), _noop
    )
    assert np.isnan(out.values).all()
    out = runner.run(
        "j-empty-var", Query(Statistic.VARIANCE, "health", ("bmi",), where=where), _noop
    )
    assert np.isnan(out.values).all()


def test_exact_grouped_job_refused_without_exact_filters(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool, exact_filters=False)
    with pytest.raises(QueryError, match="does not allow exact filtered or grouped releases"):
        runner.run("j-x", Query(Statistic.SUM, "health", ("age",), group_by=(SMOKER,)), _noop)
    with pytest.raises(QueryError, match="does not allow exact filtered or grouped releases"):
        runner.run("j-y", Query(Statistic.COUNT, "health", where=parse_where("age < 50")), _noop)
    # The party refuses by itself too (a coordinator that skips its mirror gains nothing).
    from mpc.protocol.spec import ColumnBound, JobSpec, Participant

    spec = JobSpec(
        job_id="direct",
        statistic=Statistic.SUM,
        dataset="health",
        columns=(ColumnBound("age", 0, 120),),
        frac_bits=16,
        participants=tuple(Participant(p, 1000) for p in PARTIES),
        group_by=(SMOKER,),
    )
    party = _runtime(cert_dir, tmp_path, "a", exact_filters=False)
    with pytest.raises(
        QueryError,
        match="dataset 'health' at party 'a' does not allow exact filtered or grouped "
        "releases: add differential privacy",
    ):
        party.setup(spec)


def test_dp_grouped_job_accepted_and_charged(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool, exact_filters=False, budget=True)
    query = Query(
        Statistic.COUNT,
        "health",
        group_by=(SMOKER,),
        noise=NoiseMode.DISTRIBUTED,
        epsilon=1.0,
        delta=1e-6,
    )
    out = runner.run("j-dp", query, _noop)
    plan = plan_noise(out.spec)
    assert plan is not None
    (group,) = plan.groups
    assert (group.start, group.stop) == (0, 2)  # one noise group spanning every cell
    ungrouped = plan_noise(
        runner.most_precise_spec(
            "j-ref",
            Query(Statistic.COUNT, "health", noise=NoiseMode.DISTRIBUTED, epsilon=1.0, delta=1e-6),
            {pid: runner._links[pid].describe(1.0) for pid in PARTIES},
            [None],
        )[0]
    )
    assert ungrouped is not None
    # Sensitivity of one cell: the same noise as the ungrouped count.
    assert group.sigma_sq == ungrouped.groups[0].sigma_sq
    assert out.noise is not None and len(out.noise.sigma) == 1
    true = [int((POOLED.smoker == s).sum()) for s in SMOKER.categories]
    bound = out.noise.error_bound_95[0]
    assert np.all(np.abs(out.values - true) <= 3 * bound + 1)
    for pid in PARTIES:
        runtime = runner._links[pid].runtime  # type: ignore[attr-defined]
        (status,) = runtime.ledger_status()
        assert status.charges == 1
        assert status.spent_rho == pytest.approx(float(plan.cost.rho), rel=1e-6)


def test_categories_and_column_kinds_are_checked(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool)
    undeclared = GroupKey("smoker", categories=("yes", "sometimes"))
    with pytest.raises(QueryError, match="no declared category 'sometimes'"):
        runner.run("k1", Query(Statistic.COUNT, "health", group_by=(undeclared,)), _noop)
    with pytest.raises(QueryError, match="no declared category 'never'"):
        runner.run(
            "k2", Query(Statistic.COUNT, "health", where=parse_where("smoker == 'never'")), _noop
        )
    with pytest.raises(QueryError, match="is categorical"):
        runner.run("k3", Query(Statistic.COUNT, "health", where=parse_where("smoker < 3")), _noop)
    with pytest.raises(QueryError, match="not categorical"):
        runner.run(
            "k4",
            Query(Statistic.COUNT, "health", group_by=(GroupKey("age", categories=("1",)),)),
            _noop,
        )
    with pytest.raises(QueryError, match="group it by its categories"):
        runner.run(
            "k5",
            Query(Statistic.COUNT, "health", group_by=(GroupKey("smoker", edges=(0, 1)),)),
            _noop,
        )
    many = GroupKey("age", edges=tuple(float(e) for e in range(0, 121, 1)))
    with pytest.raises(QueryError, match="max_bins"):
        runner.run(
            "k6",
            Query(
                Statistic.HISTOGRAM,
                "health",
                ("bmi",),
                group_by=(many,),
                bin_edges=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110),
            ),
            _noop,
        )
    # A quantile's fine histogram is a histogram too: max_bins (default 1024) caps it.
    fine = tuple(10.0 + 50.0 * i / 2048 for i in range(2049))
    with pytest.raises(QueryError, match=r"quantile of 2048 bins.*max_bins"):
        runner.run(
            "k7",
            Query(Statistic.QUANTILE, "health", ("bmi",), bin_edges=fine, quantiles=(0.5,)),
            _noop,
        )


def test_parties_cap_a_quantiles_bins_themselves() -> None:
    """The party's own check, whatever the coordinator says (a lying coordinator)."""
    from mpc.config import DatasetConfig
    from mpc.party.policy import check_limits
    from mpc.protocol.spec import ColumnBound, JobSpec, Participant

    fine = tuple(float(i) for i in range(2049))
    spec = JobSpec(
        job_id="q1",
        statistic=Statistic.QUANTILE,
        dataset="health",
        columns=(ColumnBound("bmi", 0.0, 2048.0),),
        frac_bits=16,
        participants=(Participant("a", 100), Participant("b", 100)),
        bin_edges=fine,
        quantiles=(0.5,),
    )
    config = DatasetConfig("health", Path("x.csv"), max_rows=100)
    with pytest.raises(QueryError, match=r"quantile of 2048 bins.*max_bins"):
        check_limits(spec, config, "a")


def test_small_cells_of_exact_grouped_results_are_suppressed(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool, min_cell_count=5)
    # Exactly one pooled row has the largest bmi: its cell holds 1..4 rows.
    top = float(POOLED.bmi.max())
    where = parse_where(f"bmi >= {top}")
    rows = POOLED[POOLED.bmi >= top]
    assert 0 < len(rows) < 5
    out = runner.run("s1", Query(Statistic.SUM, "health", ("age", "bmi"), where=where), _noop)
    assert np.isnan(out.values).all()
    out = runner.run("s2", Query(Statistic.COUNT, "health", group_by=(SMOKER,)), _noop)
    assert not np.isnan(out.values).any()  # every smoker cell is large
    means = runner.run(
        "s3", Query(Statistic.MEAN, "health", ("bmi",), where=where, group_by=(SMOKER,)), _noop
    ).values
    assert all(math.isnan(v) for v in means)  # 0 rows: NaN (undefined); 1..4 rows: suppressed


def test_ungrouped_jobs_are_unchanged(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    runner = _runner(cert_dir, tmp_path, pool, min_cell_count=3)
    with pytest.raises(MpcError, match="mean is undefined"):
        # An ungrouped, unfiltered exact mean of no rows still refuses (as it always has):
        # here through a column nobody has a row for is impossible, so check the finish.
        from mpc.stats.basic import REGISTRY

        spec = runner.most_precise_spec(
            "u1",
            Query(Statistic.MEAN, "health", ("bmi",)),
            {pid: runner._links[pid].describe(1.0) for pid in PARTIES},
            [None],
        )[0]
        REGISTRY[Statistic.MEAN].finish(spec, np.array([0.0, 0.0]))
    out = runner.run("u2", Query(Statistic.SUM, "health", ("age",)), _noop)
    assert out.values.tolist() == pytest.approx([POOLED.age.sum()], abs=out.tolerance)
    assert definition(Statistic.SUM).output_length(out.spec) == 1


def test_party_refuses_a_spec_whose_frame_differs_from_the_signed_query(
    cert_dir: Path, tmp_path: Path
) -> None:
    from mpc.protocol.query import sign_query
    from mpc.protocol.spec import ColumnBound, JobSpec, Participant

    signed = Query(
        Statistic.SUM, "health", ("age",), where=parse_where("age < 50"), group_by=(SMOKER,)
    )
    auth = sign_query(identity(cert_dir, "client"), signed)

    def spec(job_id: str, **changes: object) -> JobSpec:
        fields: dict[str, object] = dict(
            job_id=job_id,
            statistic=Statistic.SUM,
            dataset="health",
            columns=(ColumnBound("age", 0, 120),),
            frac_bits=16,
            participants=tuple(Participant(p, 1000) for p in PARTIES),
            where=signed.where,
            group_by=signed.group_by,
            client=auth,
        )
        fields.update(changes)
        return JobSpec(**fields)  # type: ignore[arg-type]

    party = _runtime(cert_dir, tmp_path, "a", exact_filters=True)
    with pytest.raises(QueryError, match=r"does not match .*\(where\)"):
        party.setup(spec("t1", where=parse_where("age < 51")))
    with pytest.raises(QueryError, match=r"does not match .*\(where\)"):
        party.setup(spec("t2", where=None))
    with pytest.raises(QueryError, match=r"does not match .*\(group_by\)"):
        party.setup(spec("t3", group_by=()))
    party.setup(spec("t4"))  # the job the client signed is accepted


@pytest.mark.parametrize("statistic", [Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE])
def test_dp_grouped_moments_report_noise_per_label(
    cert_dir: Path, tmp_path: Path, pool: ThreadPoolExecutor, statistic: Statistic
) -> None:
    runner = _runner(cert_dir, tmp_path, pool, exact_filters=False)
    query = Query(
        statistic,
        "health",
        ("age", "bmi"),
        where=parse_where("age >= 20"),
        group_by=(SMOKER, AGE_BANDS),
        noise=NoiseMode.CENTRAL,
        epsilon=2.0,
        delta=1e-6,
    )
    out = runner.run(f"dp-{statistic.value}", query, _noop)
    assert out.values.shape == (2 * 3 * 2,)
    assert np.all(np.isfinite(out.values))
    assert out.noise is not None
    assert len(out.noise.sigma) == len(out.labels) == 2
    plan = plan_noise(out.spec)
    assert plan is not None
    length = definition(statistic).output_length(out.spec)
    # The noise groups tile the whole grouped vector, each spanning every cell.
    assert plan.groups[0].start == 0 and plan.groups[-1].stop == length
    assert all(a.stop == b.start for a, b in zip(plan.groups, plan.groups[1:], strict=False))
    if statistic is not Statistic.SUM:
        values = out.values.reshape(6, 2)
        assert np.all(values[:, 0] >= 0) and np.all(
            values[:, 0] <= 120 ** (2 if statistic is Statistic.VARIANCE else 1)
        )
