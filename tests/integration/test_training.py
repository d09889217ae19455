"""Training with real coordinator and party processes: client API, CLI and predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import BOUNDS, COLUMNS, ClusterFactory, csv_paths, pooled

pytestmark = pytest.mark.integration


def test_train_closed_form_newton_cli_and_predict(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = make_cluster(n_parties=3, rows=60)
    data = pooled(csv_paths(cluster))
    x = np.column_stack([np.clip(data[:, i], *BOUNDS[c]) for i, c in enumerate(COLUMNS[:2])])
    y = np.clip(data[:, 2], *BOUNDS["score"])
    x1 = np.column_stack([np.ones(len(y)), x])
    expected = np.linalg.lstsq(x1, y, rcond=None)[0]
    with cluster.client() as client:
        closed = client.train("linear", "people", COLUMNS[:2], "score", closed_form=True)
        newton = client.train("linear", "people", COLUMNS[:2], "score", method="newton", rounds=2)
    np.testing.assert_allclose(closed.values, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(newton.values, expected, rtol=1e-4, atol=1e-6)
    assert closed.labels == ("intercept", "age", "income")
    model_path = tmp_path / "model.json"
    common = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
    run = subprocess.run(
        [sys.executable, "-m", "mpc.cli", "train", "linear", "--dataset", "people",
         "--features", "age,income", "--label", "score", "--closed-form",
         "--out", str(model_path), "--json", *common],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    model = json.loads(run.stdout)
    assert model == json.loads(model_path.read_text())
    csv = csv_paths(cluster)[0]
    run = subprocess.run(
        [sys.executable, "-m", "mpc.cli", "predict", "--model", str(model_path),
         "--csv", str(csv), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)
    clamped = np.column_stack([np.clip(rows[:, i], *BOUNDS[c]) for i, c in enumerate(COLUMNS[:2])])
    want = np.column_stack([np.ones(len(rows)), clamped]) @ expected
    np.testing.assert_allclose(json.loads(run.stdout)["predictions"], want, rtol=1e-4, atol=1e-6)
