"""Histogram (via the CLI) and variance (via the Python client) with real party processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.integration.conftest import BOUNDS, ClusterFactory, csv_paths, pooled

pytestmark = pytest.mark.integration


def test_cli_histogram_json_and_client_variance(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(n_parties=3, rows=60)
    data = pooled(csv_paths(cluster))
    base = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
    edges = [-5.0, -1.0, 0.0, 2.5, 5.0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "query",
            "histogram",
            "--dataset",
            "people",
            "--column",
            "score",
            f"--bins={','.join(str(e) for e in edges)}",
            *base,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # Scores outside [-5, 5] are counted in the first/last bin.
    expected, _ = np.histogram(np.clip(data[:, 2], edges[0], edges[-1]), bins=edges)
    assert result["values"] == expected.tolist()
    assert result["length"] == len(edges) - 1
    assert result["bounds"] == {"score": [-5.0, 5.0]}
    assert result["privacy"] is None

    bad = subprocess.run(
        [
            *(sys.executable, "-m", "mpc", "query", "histogram", "--dataset", "people"),
            *("--column", "score", "--bins", "1,0", *base),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "strictly increasing" in bad.stderr

    with cluster.client() as client:
        variance = client.variance("people", ["age", "score"])
        for i, column in ((0, "age"), (2, "score")):
            exact = np.var(np.clip(data[:, i], *BOUNDS[column]), ddof=1)
            assert variance.as_dict()[column] == pytest.approx(exact, abs=variance.tolerance)
        noisy = client.histogram("people", "age", [0, 30, 60, 90, 120], epsilon=1.0)
        assert noisy.privacy is not None
        assert noisy.values.size == 4
        assert np.all(noisy.values >= 0)
