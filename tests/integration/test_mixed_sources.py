"""One deployment, three sources: party a reads Parquet, party b a PostgreSQL table, party c
a CSV file. Secure jobs across them (grouped and filtered means, a contingency table, a
covariance matrix, a DP count and a training run) equal pandas/scipy on the pooled rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mpc.demo.cluster import DatasetFile, LocalCluster
from tests.integration.conftest import assert_no_secrets_in_logs
from tests.pg import PgServer

pytestmark = pytest.mark.integration

PARTIES = ("a", "b", "c")
REGIONS = ("north", "south", "east")
BOUNDS = {"age": (0.0, 120.0), "bmi": (10.0, 60.0), "diabetic": (0.0, 1.0)}


def _frame(index: int) -> pd.DataFrame:
    rng = np.random.default_rng(7 + index)
    n = 150 + 40 * index
    age = rng.integers(18, 95, n).astype(float)
    bmi = np.round(rng.normal(27, 5, n), 2)
    risk = -9.0 + 0.06 * age + 0.15 * bmi + rng.logistic(0, 1, n)
    return pd.DataFrame(
        {
            "age": age,
            "bmi": bmi,
            "diabetic": (risk > 0).astype(float),
            "region": rng.choice(REGIONS, n),
            "smoker": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )


def _pooled() -> pd.DataFrame:
    return pd.concat([_frame(i) for i in range(len(PARTIES))], ignore_index=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PgServer) -> Iterator[LocalCluster]:
    import psycopg

    workdir = tmp_path_factory.mktemp("mixed")
    (workdir / "data").mkdir()
    categories = {"region": REGIONS, "smoker": ("yes", "no")}
    common = dict(max_rows=10_000, bounds=BOUNDS, categories=categories, exact_filters=True)

    parquet = workdir / "data" / "a.parquet"
    _frame(0).to_parquet(parquet, index=False)
    with psycopg.connect(postgres.dsn, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS mixed_patients")
        con.execute(
            "CREATE TABLE mixed_patients (age double precision, bmi double precision, "
            "diabetic double precision, region text, smoker text)"
        )
        with con.cursor().copy("COPY mixed_patients FROM STDIN") as copy:
            for row in _frame(1).itertuples(index=False):
                copy.write_row(tuple(row))
    csv = workdir / "data" / "c.csv"
    _frame(2).to_csv(csv, index=False)

    datasets = {
        "a": {"patients": DatasetFile(parquet, source="parquet", **common)},  # type: ignore[arg-type]
        "b": {
            "patients": DatasetFile(
                workdir / "data",  # not read by a PostgreSQL source
                source="postgres",
                sql_options={"dsn": postgres.dsn, "table": "mixed_patients"},
                **common,  # type: ignore[arg-type]
            )
        },
        "c": {"patients": DatasetFile(csv, **common)},  # type: ignore[arg-type]
    }
    with LocalCluster(workdir, datasets, job_timeout=60.0, min_cell_count=1) as running:
        yield running
        assert_no_secrets_in_logs(running)


def test_grouped_filtered_mean_equals_pandas(cluster: LocalCluster) -> None:
    pooled = _pooled()
    with cluster.client() as client:
        result = client.mean("patients", ["bmi", "age"], where="age >= 40", group_by=["region"])
    table = result.to_pandas()
    expected = pooled[pooled.age >= 40].groupby("region")[["bmi", "age"]].mean()
    for region in REGIONS:
        got = table.loc[region, ["bmi", "age"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected.loc[region].to_numpy(), atol=1e-6)


def test_contingency_and_chi_square_equal_scipy(cluster: LocalCluster) -> None:
    pooled = _pooled()
    with cluster.client() as client:
        result = client.contingency("patients", "region", "smoker")
    table = result.to_pandas()
    crosstab = pd.crosstab(pooled.region, pooled.smoker).loc[list(REGIONS), ["yes", "no"]]
    np.testing.assert_array_equal(table.to_numpy(dtype=float), crosstab.to_numpy(dtype=float))
    chi2, p, dof, _ = stats.chi2_contingency(crosstab.to_numpy(), correction=False)
    assert table.attrs["chi2"] == pytest.approx(chi2, rel=1e-9)
    assert table.attrs["p_value"] == pytest.approx(p, rel=1e-6)
    assert table.attrs["dof"] == dof


def test_covariance_equals_numpy(cluster: LocalCluster) -> None:
    pooled = _pooled()
    with cluster.client() as client:
        result = client.covariance("patients", ["age", "bmi"])
    got = result.to_pandas().to_numpy(dtype=float)
    np.testing.assert_allclose(got, np.cov(pooled[["age", "bmi"]].to_numpy().T), atol=1e-3)


def test_training_streams_every_source(cluster: LocalCluster) -> None:
    """A closed-form linear fit over the three sources equals least squares on the pooled
    rows (the parties stream their rows in batches)."""
    pooled = _pooled()
    with cluster.client() as client:
        model = client.train("linear", "patients", ["age", "diabetic"], "bmi", closed_form=True)
    design = np.column_stack([np.ones(len(pooled)), pooled.age, pooled.diabetic])
    expected, *_ = np.linalg.lstsq(design, pooled.bmi.to_numpy(), rcond=None)
    np.testing.assert_allclose(model.values, expected, atol=2e-3)
    predictions = model.predict(pooled[["age", "diabetic"]])
    np.testing.assert_allclose(predictions, design @ expected, atol=1e-2)


def test_stored_result_states_the_same_tolerances(cluster: LocalCluster) -> None:
    """A result fetched again by job id, after a coordinator restart, carries the tolerances
    the live result stated (per matrix entry for a correlation; NaN where no bound follows
    from public limits)."""
    with cluster.client() as client:
        live = client.correlation("patients", ["age", "bmi"])
    cluster.stop_process("coordinator")  # the result now comes from the coordinator's store
    cluster.start_coordinator()
    with cluster.client() as client:
        stored = client.result(live.job_id)
    assert live.tolerances is not None and stored.tolerances is not None
    assert set(live.tolerances) == set(stored.tolerances)
    for label, tolerance in live.tolerances.items():
        np.testing.assert_equal(stored.tolerances[label], tolerance)
    assert stored.tolerance == live.tolerance
