"""``mpc.LocalCluster`` from pandas DataFrames: real processes, results equal to pandas'."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc.demo.cluster import DatasetFile
from mpc.errors import ConfigError
from mpc.training import predict_class, predict_rows

pytestmark = pytest.mark.integration

BOUNDS = {"age": (0.0, 120.0), "bmi": (10.0, 60.0), "diabetic": (0.0, 1.0)}


def hospital(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, rows).round(1)
    bmi = rng.normal(28, 5, rows).clip(15, 50).round(2)
    risk = -9.0 + 0.06 * age + 0.15 * bmi + rng.logistic(0, 1, rows)
    return pd.DataFrame(
        {
            "age": age,
            "bmi": bmi,
            "diabetic": (risk > 0).astype(np.int64),
            "ward": pd.Categorical(rng.choice(["icu", "general"], rows), ["general", "icu", "x"]),
            "sex": rng.choice(["F", "M"], rows),
        }
    )


def party_config(cluster: mpc.LocalCluster, party_id: str) -> dict[str, object]:
    return tomllib.loads(cluster.party_config_path(party_id).read_text())


def test_dataframes_queries_training_and_predict(tmp_path: Path) -> None:
    frames = {"h1": hospital(1, 150), "h2": hospital(2, 120), "h3": hospital(3, 90)}
    pooled = pd.concat(frames.values(), ignore_index=True)
    data = {pid: {"patients": frame} for pid, frame in frames.items()}
    with mpc.LocalCluster(data, bounds=BOUNDS, categories={"sex": ["F", "M", "X"]}) as cluster:
        workdir = cluster.workdir
        assert cluster.party_ids == ["h1", "h2", "h3"]
        config = party_config(cluster, "h2")
        columns = config["datasets"]["patients"]["columns"]  # type: ignore[index]
        assert columns["age"] == {"lo": 0.0, "hi": 120.0}
        assert columns["ward"] == {"categories": ["general", "icu", "x"]}  # the dtype's own
        assert columns["sex"] == {"categories": ["F", "M", "X"]}  # the caller's override
        with cluster.client() as client:
            count = client.count("patients")
            mean = client.mean("patients", ["age", "bmi"])
            model = client.train(
                "logistic", "patients", ["age", "bmi"], "diabetic", method="newton", rounds=12
            )
        plot = tmp_path / "curve.png"
        run = subprocess.run(
            [sys.executable, "-m", "mpc.cli", "train", "logistic", "--dataset", "patients",
             "--features", "age,bmi", "--label", "diabetic", "--rounds", "3", "--holdout",
             "0.2", "--json", "--plot", str(plot), "--coordinator",
             cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert not workdir.exists()  # a temporary workdir is removed by stop()
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rounds"] == 3  # stdout: the JSON model only
    progress = [line for line in run.stderr.splitlines() if line.startswith("round ")]
    assert [line.split()[1] for line in progress] == ["1/3", "2/3", "3/3"]
    assert all(" loss " in line and " elapsed " in line for line in progress)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert count.value == pytest.approx(len(pooled), abs=1e-6)
    np.testing.assert_allclose(
        list(mean.as_dict().values()), pooled[["age", "bmi"]].mean().to_numpy(), rtol=1e-6
    )
    sklearn = pytest.importorskip("sklearn.linear_model")
    x = pooled[["age", "bmi"]].to_numpy()
    reference = sklearn.LogisticRegression(C=np.inf, max_iter=1000, tol=1e-10).fit(
        x, pooled["diabetic"]
    )
    prob = predict_rows(model.values, model.labels, model.model, pooled)
    np.testing.assert_allclose(prob, reference.predict_proba(x)[:, 1], atol=2e-3)
    classes = predict_class(model.values, model.labels, model.model, pooled)
    assert np.mean(classes == reference.predict(x)) > 0.98


def test_options_per_dataset_files_and_vectors(tmp_path: Path) -> None:
    frame = hospital(4, 40)
    csv = tmp_path / "visits.csv"
    frame[["age", "bmi"]].to_csv(csv, index=False)
    data = {
        "a": {"patients": frame, "visits": csv, "counts": np.arange(5.0)},
        "b": {
            "patients": hospital(5, 30),
            "visits": DatasetFile(csv, max_rows=77, bounds={"age": (0.0, 100.0)}),
            "counts": np.ones(5),
        },
    }
    cluster = mpc.LocalCluster(
        data,
        workdir=tmp_path / "cluster",
        bounds={"patients": BOUNDS, "visits": {"age": (1.0, 99.0)}},
        budget={"patients": (2.0, 1e-6)},
        participation="cohort",
        exact_filters={"patients": True},
        max_rows={"patients": 500},
    )
    a = party_config(cluster, "a") if cluster.party_config_path("a").exists() else None
    assert a is None  # nothing is written before start
    try:
        cluster.start()
        a = party_config(cluster, "a")["datasets"]
        b = party_config(cluster, "b")["datasets"]
        assert a["patients"]["budget"]["epsilon"] == 2.0  # type: ignore[index]
        assert a["patients"]["exact_filters"] is True  # type: ignore[index]
        assert a["patients"]["max_rows"] == 500  # type: ignore[index]
        assert a["patients"]["participation"] == "cohort"  # type: ignore[index]
        assert "budget" not in a["visits"]  # type: ignore[operator]
        assert a["visits"]["columns"]["age"] == {"lo": 1.0, "hi": 99.0}  # type: ignore[index]
        assert b["visits"]["max_rows"] == 77  # type: ignore[index]  # a DatasetFile as is
        assert a["counts"]["kind"] == "vector"  # type: ignore[index]
        with cluster.client() as client:
            exact = client.count("visits")  # no budget: exact results allowed
            noisy = client.mean("patients", ["age"], epsilon=1.0)
            vector = client.vector_sum("counts", bounds=(0.0, 10.0))
        np.testing.assert_allclose(vector.values, np.arange(5.0) + 1, atol=1e-6)
        assert exact.value == pytest.approx(80, abs=1e-6)
        assert noisy.privacy is not None and noisy.privacy.epsilon == 1.0
        assert abs(noisy.value - 55) < 40
    finally:
        cluster.stop()
    assert (tmp_path / "cluster" / "logs").is_dir()  # a given workdir is kept


def test_bad_inputs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one party"):
        mpc.LocalCluster({})
    with pytest.raises(ConfigError, match="expected a DataFrame"):
        mpc.LocalCluster({"a": {"d": 42}}, workdir=tmp_path)
    with pytest.raises(ConfigError, match="one-dimensional"):
        mpc.LocalCluster({"a": {"d": np.ones((2, 2))}}, workdir=tmp_path)
