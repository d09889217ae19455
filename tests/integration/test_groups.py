"""Filters and groups with real party processes: results equal pandas on the pooled rows,
the exact_filters policy, DP grouped jobs, and the CLI's --where / --group-by."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import MpcError
from tests.integration.conftest import assert_no_secrets_in_logs

pytestmark = pytest.mark.integration

PARTIES = ("a", "b", "c")
CATEGORIES = ("yes", "no", "maybe")
BOUNDS = {"age": (0.0, 120.0), "bmi": (10.0, 60.0)}


def _frame(index: int) -> pd.DataFrame:
    rng = np.random.default_rng(100 + index)
    n = 60 + 15 * index
    return pd.DataFrame(
        {
            "age": rng.integers(18, 95, n).astype(float),
            "bmi": np.round(rng.normal(27, 5, n), 2),
            "smoker": rng.choice(CATEGORIES, n, p=[0.3, 0.6, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("groups")
    (workdir / "data").mkdir()
    datasets = {}
    for index, pid in enumerate(PARTIES):
        path = workdir / "data" / f"{pid}.csv"
        _frame(index).to_csv(path, index=False)
        common = dict(max_rows=10_000, bounds=BOUNDS, categories={"smoker": CATEGORIES})
        datasets[pid] = {
            "health": DatasetFile(path, exact_filters=True, **common),  # type: ignore[arg-type]
            "strict": DatasetFile(path, **common),  # type: ignore[arg-type]
        }
    with LocalCluster(workdir, datasets, job_timeout=60.0, min_cell_count=1) as running:
        yield running
        assert_no_secrets_in_logs(running)


def _pooled() -> pd.DataFrame:
    return pd.concat([_frame(i) for i in range(len(PARTIES))], ignore_index=True)


def test_grouped_statistics_equal_pandas(cluster: LocalCluster) -> None:
    rows = _pooled()
    subset = rows[(rows.age >= 30) & ((rows.bmi < 30) | (rows.smoker == "yes"))]
    where = "age >= 30 and (bmi < 30 or smoker in ('yes'))"
    expected = subset.groupby("smoker")[["age", "bmi"]]
    with cluster.client() as client:
        means = client.mean("health", ["age", "bmi"], where=where, group_by=["smoker"])
        sums = client.sum("health", ["age", "bmi"], where=where, group_by="smoker")
        variances = client.variance("health", ["age", "bmi"], where=where, group_by=["smoker"])
        counts = client.count("health", where=where, group_by=["smoker"])
        hist = client.histogram(
            "health", "bmi", [10, 20, 25, 30, 40, 60], group_by=["smoker", "age:0,50,120"]
        )
        plain = client.mean("health", ["age"])
    df = means.to_pandas()
    assert df.index.name == "smoker" and list(df.index) == list(CATEGORIES)
    pd.testing.assert_frame_equal(
        df, expected.mean().reindex(CATEGORIES), check_exact=False, atol=1e-6, check_names=False
    )
    pd.testing.assert_frame_equal(
        sums.to_pandas(),
        expected.sum().reindex(CATEGORIES),
        check_exact=False,
        atol=1e-3,
        check_names=False,
    )
    pd.testing.assert_frame_equal(
        variances.to_pandas(),
        expected.var().reindex(CATEGORIES),
        check_exact=False,
        atol=1e-5,
        check_names=False,
    )
    assert counts.to_pandas()["count"].tolist() == [
        int((subset.smoker == c).sum()) for c in CATEGORIES
    ]
    table = hist.to_pandas()
    assert table.index.names == ["smoker", "age", "bmi"]
    assert len(table) == 3 * 2 * 5
    band = pd.cut(rows.age, [0, 50, 120], right=False, labels=["[0, 50)", "[50, 120]"])
    cube = table["count"].to_numpy().reshape(3, 2, 5)
    for s, smoker in enumerate(CATEGORIES):
        for b, age_band in enumerate(("[0, 50)", "[50, 120]")):
            part = rows[(rows.smoker == smoker) & (band == age_band)]
            got = cube[s, b]
            want, _ = np.histogram(np.clip(part.bmi, 10, 60), bins=[10, 20, 25, 30, 40, 60])
            assert got.tolist() == want.tolist()
    one = plain.to_pandas()
    assert one.shape == (1, 1) and one["age"].iloc[0] == pytest.approx(rows.age.mean(), abs=1e-6)
    assert means.to_json()["groups"][0]["keys"] == {"smoker": "yes"}  # type: ignore[index]


def test_exact_grouped_needs_exact_filters_dp_is_accepted(cluster: LocalCluster) -> None:
    with cluster.client() as client:
        with pytest.raises(MpcError, match="does not allow exact filtered or grouped releases"):
            client.count("strict", group_by=["smoker"])
        with pytest.raises(MpcError, match="no declared category 'never'"):
            client.count("health", where="smoker in ('never')")
        noisy = client.count(
            "strict", group_by=["smoker"], epsilon=1.0, noise="central", delta=1e-6
        )
    assert noisy.privacy is not None
    assert noisy.values.size == len(CATEGORIES)
    rows = _pooled()
    truth = np.array([(rows.smoker == c).sum() for c in CATEGORIES])
    bound = noisy.privacy.error_bound_95["count"]
    assert np.all(np.abs(noisy.values - truth) <= 4 * bound + 1)


def test_cli_where_and_group_by(cluster: LocalCluster) -> None:
    base = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
    command = [
        sys.executable,
        "-m",
        "mpc",
        "query",
        "mean",
        "--dataset",
        "health",
        "--column",
        "bmi",
        "--where",
        "age < 60",
        "--group-by",
        "smoker,age:0,30,60",
        *base,
    ]
    text = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    lines = text.stdout.splitlines()
    assert any(line.split()[:2] == ["smoker", "age"] for line in lines)
    out = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    data = json.loads(out.stdout)
    rows = _pooled()
    part = rows[(rows.age < 60) & (rows.smoker == "yes") & (rows.age < 30)]
    first = data["groups"][0]
    assert first["keys"] == {"smoker": "yes", "age": "[0, 30)"}
    assert first["values"]["bmi"] == pytest.approx(part.bmi.mean(), abs=1e-6)
