"""Real coordinator and party processes on 127.0.0.1 (port 0), cleaned up even on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mpc.demo.cluster import DatasetFile, LocalCluster

#: Planted in the data: it must never show up in any log, error or result text.
CANARY = 7355608.25

COLUMNS = ["age", "income", "score"]
BOUNDS = {"age": (0.0, 120.0), "income": (-50_000.0, 500_000.0), "score": (-10.0, 10.0)}


def party_table(index: int, rows: int) -> np.ndarray:
    """Deterministic test data with values outside the bounds, so clamping matters."""
    grid = np.arange(rows, dtype=np.float64)
    age = 18 + (grid * 7 + index * 13) % 90 + 0.25 * (index % 3)
    income = -60_000 + (grid * 9_871 + index * 4_567) % 600_000
    score = np.sin(grid + index) * 12
    table = np.column_stack([age, income, score])
    if rows > 2:
        table[1, 1] = CANARY  # a secret-looking value inside the bounds
    return table


def write_party_csv(path: Path, table: np.ndarray) -> None:
    np.savetxt(path, table, delimiter=",", header=",".join(COLUMNS), comments="", fmt="%.17g")


def pooled(paths: list[Path]) -> np.ndarray:
    return np.vstack([np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2) for p in paths])


ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build and start a cluster; every cluster made here is stopped at teardown."""
    clusters: list[LocalCluster] = []

    def make(
        n_parties: int = 3,
        rows: int = 50,
        job_timeout: float = 30.0,
        rpc_timeout: float = 10.0,
        declare_bounds: bool = True,
        workdir: Path | None = None,
    ) -> LocalCluster:
        workdir = workdir or tmp_path / f"cluster{len(clusters)}"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        datasets = {}
        for index, pid in enumerate("abcde"[:n_parties]):
            path = workdir / "data" / f"{pid}.csv"
            write_party_csv(path, party_table(index, rows + 3 * index))
            datasets[pid] = {
                "people": DatasetFile(
                    path, max_rows=10_000, bounds=BOUNDS if declare_bounds else {}
                )
            }
        cluster = LocalCluster(
            workdir,
            datasets,
            job_timeout=job_timeout,
            rpc_timeout=rpc_timeout,
            log_level="DEBUG",
        )
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()
    for cluster in clusters:
        assert_no_secrets_in_logs(cluster)


def assert_no_secrets_in_logs(cluster: LocalCluster) -> None:
    """The canary value, and any private key, must not be in any log of the run."""
    for log in cluster.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        for needle in (repr(CANARY), "7355608", "PRIVATE KEY"):
            assert needle not in text, f"{needle!r} leaked into {log.name}"


def csv_paths(cluster: LocalCluster) -> list[Path]:
    return [cluster.datasets[pid]["people"].path for pid in cluster.party_ids]
