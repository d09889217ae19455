"""The analyses against real coordinator and party processes: covariance, correlation,
Welch's t-test, a contingency table and quantiles equal numpy/scipy on the pooled rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mpc.client import Client
from mpc.client_analyses import AnalysesMixin
from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.protocol.frame import GroupKey

pytestmark = pytest.mark.integration

BOUNDS = {"age": (0.0, 120.0), "score": (-10.0, 10.0)}
GROUPS = ("control", "treated")
COLOURS = ("red", "green", "blue")

AnalysisClient = Client
assert issubclass(Client, AnalysesMixin)


def party_frame(index: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(100 + index)
    group = rng.choice(np.array(GROUPS), rows)
    age = rng.normal(45, 20, rows)  # some beyond [0, 120]: clamping matters
    score = 0.08 * age + np.where(group == "treated", 1.5, 0.0) + rng.normal(0, 2, rows)
    colour = np.where(
        rng.uniform(size=rows) < 0.6, np.where(group == "treated", "red", "blue"), "green"
    )
    return pd.DataFrame({"age": age, "score": score, "group": group, "colour": colour})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[LocalCluster, pd.DataFrame]]:
    (tmp_path / "data").mkdir()
    datasets, frames = {}, []
    for index, pid in enumerate("abc"):
        frame = party_frame(index, 80 + 17 * index)
        path = tmp_path / "data" / f"{pid}.csv"
        frame.to_csv(path, index=False, float_format="%.17g")
        frames.append(frame)
        datasets[pid] = {
            "trial": DatasetFile(
                path,
                max_rows=10_000,
                bounds=BOUNDS,
                categories={"group": GROUPS, "colour": COLOURS},
                exact_filters=True,
            ),
            "trial_dp": DatasetFile(
                path,
                max_rows=10_000,
                bounds=BOUNDS,
                categories={"group": GROUPS, "colour": COLOURS},
                budget=(50.0, 1e-3),
            ),
        }
    local = LocalCluster(tmp_path, datasets, job_timeout=60.0, rpc_timeout=20.0)
    local.start()
    try:
        yield local, pd.concat(frames, ignore_index=True)
    finally:
        local.stop()


def _client(local: LocalCluster) -> AnalysisClient:
    return AnalysisClient(local.coordinator_address, tls_dir=local.tls_dir)


def _clamped(data: pd.DataFrame, column: str) -> np.ndarray:
    return np.clip(data[column].to_numpy(), *BOUNDS[column])


def test_covariance_and_correlation(cluster: tuple[LocalCluster, pd.DataFrame]) -> None:
    local, data = cluster
    pooled = np.column_stack([_clamped(data, "age"), _clamped(data, "score")])
    with _client(local) as client:
        cov = client.covariance("trial", ["age", "score"], BOUNDS)
        corr = client.correlation("trial", ["age", "score"], BOUNDS)
    np.testing.assert_allclose(cov.values.reshape(2, 2), np.cov(pooled, rowvar=False), rtol=1e-5)
    np.testing.assert_allclose(
        corr.values.reshape(2, 2), np.corrcoef(pooled, rowvar=False), rtol=1e-5, atol=1e-6
    )
    assert corr.values[1] > 0.3  # the planted correlation


def test_ttest_contingency_and_quantiles(cluster: tuple[LocalCluster, pd.DataFrame]) -> None:
    local, data = cluster
    treated = (data["group"] == "treated").to_numpy()
    with _client(local) as client:
        ttest = client.ttest(
            "trial",
            ["score"],
            by=GroupKey("group", categories=GROUPS),
            bounds={"score": BOUNDS["score"]},
        )
        table = client.contingency(
            "trial", GroupKey("group", categories=GROUPS), GroupKey("colour", categories=COLOURS)
        )
        quantiles = client.quantiles("trial", "age", [0.25, 0.5, 0.9], (0.0, 120.0), bins=480)
    score = _clamped(data, "score")
    expected = scipy_stats.ttest_ind(score[~treated], score[treated], equal_var=False)
    t, df, p = ttest.values[3:6]
    np.testing.assert_allclose(
        [t, df, p], [expected.statistic, expected.df, expected.pvalue], rtol=1e-4
    )
    crosstab = pd.crosstab(data["group"], data["colour"]).loc[list(GROUPS), list(COLOURS)]
    np.testing.assert_array_equal(table.values[:6].reshape(2, 3), crosstab.to_numpy())
    chi2, p_value, dof, _ = scipy_stats.chi2_contingency(crosstab.to_numpy(), correction=False)
    np.testing.assert_allclose(table.values[6:], [chi2, dof, p_value], rtol=1e-9)
    values = quantiles.values.reshape(3, 2)
    truth = np.quantile(_clamped(data, "age"), [0.25, 0.5, 0.9])
    np.testing.assert_allclose(values[:, 1], 0.25)  # the bin width
    assert np.all(np.abs(values[:, 0] - truth) <= values[:, 1])


def test_grouped_covariance_as_a_table(cluster: tuple[LocalCluster, pd.DataFrame]) -> None:
    local, data = cluster
    by_group = GroupKey("group", categories=GROUPS)
    with _client(local) as client:
        cov = client.covariance("trial", ["age", "score"], BOUNDS, group_by=[by_group])
    frame = cov.to_pandas()
    assert list(frame.index.names) == ["group", "column"]
    assert list(frame.columns) == ["age", "score"]
    for name in GROUPS:
        rows = (data["group"] == name).to_numpy()
        pooled = np.column_stack([_clamped(data, "age")[rows], _clamped(data, "score")[rows]])
        expected = np.cov(pooled, rowvar=False)
        np.testing.assert_allclose(frame.loc[name].to_numpy(), expected, rtol=1e-5)


def test_dp_median_and_correlation(cluster: tuple[LocalCluster, pd.DataFrame]) -> None:
    local, data = cluster
    with _client(local) as client:
        median = client.median("trial_dp", "age", (0.0, 120.0), bins=240, epsilon=5.0)
        corr = client.correlation("trial_dp", ["age", "score"], BOUNDS, epsilon=5.0)
    # The stated error is a 95% bound; at epsilon 5 it covers the truth comfortably.
    table = median.to_pandas()
    assert list(table.columns) == ["value", "error", "rank_error"]
    value, error, rank_error = table.iloc[0]
    assert abs(value - np.median(_clamped(data, "age"))) <= error and rank_error >= 1
    matrix = corr.values.reshape(2, 2)
    assert np.all(np.abs(matrix) <= 1) and matrix[0, 0] == 1.0
    assert corr.privacy is not None and corr.privacy.epsilon_spent <= 5.0 + 1e-9
    # The noise report has one entry per released value.
    assert median.privacy is not None
    assert list(median.privacy.error_bound_95) == list(median.labels)
    assert list(corr.privacy.sigma) == list(corr.labels)


def test_cli_commands(
    cluster: tuple[LocalCluster, pd.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from mpc.cli.analyses import register

    local, data = cluster
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="analysis_command", required=True))
    base = ["--coordinator", local.coordinator_address, "--tls-dir", str(local.tls_dir)]
    commands = [
        [
            "correlation",
            "--dataset",
            "trial",
            "--column",
            "age,score",
            "--bounds=age=0:120",
            "--bounds=score=-10:10",
        ],
        [
            "contingency",
            "--dataset",
            "trial",
            "--rows",
            "group=control,treated",
            "--cols",
            "colour=red,green,blue",
        ],
        ["median", "--dataset", "trial", "--column", "age", "--bounds", "0:120"],
    ]
    outputs = []
    for command in commands:
        args = parser.parse_args([*command, *base, "--json"])
        assert args.func(args) == 0
        values = json.loads(capsys.readouterr().out)["values"]
        outputs.append(list(values.values()) if isinstance(values, dict) else values)
    pooled = np.column_stack([_clamped(data, "age"), _clamped(data, "score")])
    np.testing.assert_allclose(outputs[0], np.corrcoef(pooled, rowvar=False).ravel(), rtol=1e-5)
    assert sum(outputs[1][:6]) == len(data)
    value, error = outputs[2]
    assert abs(value - np.median(_clamped(data, "age"))) <= error
    args = parser.parse_args([*commands[2], *base])
    assert args.func(args) == 0
    assert "median over 'trial'" in capsys.readouterr().out
