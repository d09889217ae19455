"""Party audit logs with real processes: jobs recorded, read and verified by the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import JobFailedError
from tests.integration.conftest import (
    BOUNDS,
    CANARY,
    ClusterFactory,
    party_table,
    write_party_csv,
)

pytestmark = pytest.mark.integration


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpc", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _cluster(workdir: Path) -> LocalCluster:
    """Three parties whose own noise floor (min_colluders = 3) is above what the coordinator
    asks for (n - 1 = 2): they refuse every distributed-noise job, which the coordinator cannot
    foresee (it refuses a cohort subset itself, so such a job never reaches a party)."""
    (workdir / "data").mkdir(parents=True)
    datasets = {}
    for index, pid in enumerate("abc"):
        path = workdir / "data" / f"{pid}.csv"
        write_party_csv(path, party_table(index, 30))
        datasets[pid] = {"people": DatasetFile(path, max_rows=10_000, bounds=BOUNDS)}
    return LocalCluster(workdir, datasets, min_colluders=3, log_level="DEBUG")


def test_jobs_are_recorded_and_the_chain_verifies(tmp_path: Path) -> None:
    with _cluster(tmp_path / "cluster") as cluster, cluster.client() as client:
        accepted = client.sum("people", ["age", "income"])
        with pytest.raises(JobFailedError, match="requires at least 3"):
            client.sum("people", ["age"], epsilon=1.0)
        with pytest.raises(JobFailedError, match="only for its whole cohort"):
            client.sum("people", ["age"], parties=["a", "b"])  # refused by the coordinator
        logs = {pid: _read(cluster, pid) for pid in cluster.party_ids}
        # Every party saw the accepted job; the refused one reached at least one party (the
        # coordinator stops asking the others once a party refuses).
        assert all(records[0]["job_id"] == accepted.job_id for records in logs.values())
        pid = next(p for p, records in logs.items() if len(records) == 2)
        config = cluster.party_config_path(pid)
        log = config.with_name(f"{config.stem}.audit.jsonl")  # the default: beside the config

        first, second = logs[pid]
        assert first["outcome"] == "accepted" and first["statistic"] == "sum"
        assert first["dataset"] == "people" and first["columns"] == ["age", "income"]
        assert first["participants"] == ["a", "b", "c"] and first["rounds"] == 1
        assert first["bounds"]["age"] == [0.0, 120.0] and first["dp"] is None
        assert first["client"] == "client"  # the name in the signing certificate
        assert second["outcome"] == "refused" and second["error"] == "PrivacyBudgetError"
        assert "requires at least 3" in second["reason"]
        assert second["dp"]["epsilon"] == 1.0 and second["dp"]["charged"] is False
        assert (first["seq"], second["seq"]) == (1, 2)

        table = _audit("show", "--config", str(config))
        assert table.returncode == 0 and "accepted" in table.stdout and "refused" in table.stdout
        for other in cluster.party_ids:
            ok = _audit("verify", "--config", str(cluster.party_config_path(other)))
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert "intact" in ok.stdout
            text = cluster.party_config_path(other).with_suffix(".audit.jsonl").read_text()
            assert str(CANARY) not in text and "PRIVATE KEY" not in text

        # Tampering: the refusal rewritten as accepted.
        log.write_text(log.read_text().replace('"outcome":"refused"', '"outcome":"accepted"'))
        broken = _audit("verify", "--config", str(config), "--json")
        assert broken.returncode == 1
        result = json.loads(broken.stdout)
        assert result["ok"] is False and result["line"] == 2
        assert "hash mismatch" in result["problem"]


def _read(cluster: LocalCluster, pid: str) -> list[dict[str, object]]:
    shown = _audit("show", "--config", str(cluster.party_config_path(pid)), "--json")
    assert shown.returncode == 0, shown.stderr
    records: list[dict[str, object]] = json.loads(shown.stdout)
    return records


def test_party_keeps_appending_after_a_restart(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(n_parties=2)
    with cluster.client() as client:
        client.count("people")
    cluster.stop_process("b")
    cluster.start_party("b")
    cluster._wait_ready("b")
    with cluster.client() as client:
        client.count("people")
    config: Path = cluster.party_config_path("b")
    records = json.loads(_audit("show", "--config", str(config), "--json").stdout)
    assert [r["seq"] for r in records] == [1, 2]
    assert [r["outcome"] for r in records] == ["accepted", "accepted"]
    assert _audit("verify", "--config", str(config)).returncode == 0
