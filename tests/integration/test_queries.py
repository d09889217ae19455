"""Every query against numpy on the same files, with 2, 3 and 5 real party processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mpc.errors import JobFailedError
from tests.integration.conftest import BOUNDS, COLUMNS, ClusterFactory, csv_paths, pooled

pytestmark = pytest.mark.integration


def _clamped(data: np.ndarray) -> dict[str, np.ndarray]:
    return {c: np.clip(data[:, i], *BOUNDS[c]) for i, c in enumerate(COLUMNS)}


@pytest.mark.parametrize("n_parties", [2, 3, 5])
def test_sum_count_mean_match_numpy(make_cluster: ClusterFactory, n_parties: int) -> None:
    cluster = make_cluster(n_parties=n_parties, rows=40)
    data = pooled(csv_paths(cluster))
    clamped = _clamped(data)
    with cluster.client() as client:
        result = client.sum("people", COLUMNS)
        assert result.parties == tuple(cluster.party_ids)
        for column, value in result.as_dict().items():
            assert value == pytest.approx(clamped[column].sum(), abs=result.tolerance)
        result = client.count("people")
        assert result.value == data.shape[0]
        result = client.mean("people", ["age", "score"])
        for column, value in result.as_dict().items():
            assert value == pytest.approx(clamped[column].mean(), abs=result.tolerance + 1e-12)
        # Bounds from the query override the declared schema, and clamp at every party.
        result = client.mean("people", ["income"], bounds={"income": (0.0, 100_000.0)})
        assert result.value == pytest.approx(
            np.clip(data[:, 1], 0, 100_000).mean(), abs=result.tolerance
        )
        # A subset of the parties would let a client difference out one party's subtotal:
        # the parties' cohort policy refuses it (tests/security has the attack itself).
        if len(cluster.party_ids) > 2:
            with pytest.raises(JobFailedError, match="only for its whole cohort"):
                client.sum("people", ["age"], parties=cluster.party_ids[:2])


def test_cli_query_json_and_parties(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(n_parties=3)
    data = pooled(csv_paths(cluster))
    base = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "query",
            "mean",
            "--dataset",
            "people",
            "--column",
            "age,score",
            "--bounds",
            "age=0:120",
            "--bounds=score=-5:5",
            *base,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["parties"] == ["a", "b", "c"]
    assert result["job_id"].startswith("job-")
    assert result["values"]["age"] == pytest.approx(np.clip(data[:, 0], 0, 120).mean(), abs=1e-4)
    assert result["values"]["score"] == pytest.approx(np.clip(data[:, 2], -5, 5).mean(), abs=1e-4)
    out = subprocess.run(
        [sys.executable, "-m", "mpc", "parties", *base, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parties = json.loads(out.stdout)
    assert [p["party_id"] for p in parties] == ["a", "b", "c"]
    assert all(p["reachable"] for p in parties)
    assert parties[0]["datasets"][0]["columns"]["age"] == [0.0, 120.0]
    assert "rows" not in json.dumps(parties).replace("max_rows", "")  # no private row counts


def test_vector_sum(make_cluster: ClusterFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mpc.demo.cluster import DatasetFile, LocalCluster

    vectors = {pid: np.linspace(-2, 2, 300_001) * (i + 1) for i, pid in enumerate("abc")}
    datasets = {}
    for pid, vector in vectors.items():
        np.save(tmp_path / f"{pid}.npy", vector)
        datasets[pid] = {"grad": DatasetFile(tmp_path / f"{pid}.npy", 1, kind="vector")}
    with LocalCluster(tmp_path / "vec", datasets) as cluster, cluster.client() as client:
        result = client.vector_sum("grad", bounds=(-3.0, 3.0))
    expected = sum(np.clip(v, -3, 3) for v in vectors.values())
    assert result.values.shape == expected.shape
    assert np.max(np.abs(result.values - expected)) <= result.tolerance
