"""Rough edges that need running servers: unreadable vector datasets, frac_bits 0."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import JobFailedError
from tests.integration.conftest import ClusterFactory


def _bad_vectors(tmp_path: Path) -> dict[str, Path]:
    bad = {
        "flat": None,
        "two_d": np.ones((3, 4)),
        "complex": np.ones(5, dtype=complex),
        "nan": np.array([1.0, np.nan, 2.0]),
    }
    paths = {}
    for name, array in bad.items():
        path = tmp_path / f"{name}.npy"
        if array is None:
            path.write_text("not an npy file\n")
        else:
            np.save(path, array)
        paths[name] = path
    return paths


def test_unreadable_vector_dataset_is_reported_unavailable(tmp_path: Path) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.ones(3))
    bad = _bad_vectors(tmp_path)
    datasets = {
        "a": {name: DatasetFile(path, 1, kind="vector") for name, path in bad.items()},
        "b": {name: DatasetFile(good, 1, kind="vector") for name in bad},
    }
    with LocalCluster(tmp_path / "vec", datasets) as cluster, cluster.client() as client:
        for name in bad:
            wanted = f"dataset '{name}' is unavailable at party 'a'"
            with pytest.raises(JobFailedError, match=wanted):
                client.vector_sum(name, bounds=(-3.0, 3.0))


def test_frac_bits_zero_is_honoured_not_replaced_by_the_default(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster(n_parties=2, rows=20)
    with cluster.client() as client:
        default = client.query("sum", "people", ["age"])
        integers = client.query("sum", "people", ["age"], frac_bits=0)
    assert default.frac_bits > 0
    assert integers.frac_bits == 0
    assert integers.tolerance > default.tolerance


# --- servers from the command line ---------------------------------------------------------


def _hand_deployment(tmp_path: Path) -> Path:
    """A copy of parties/ with fresh certificates; every server listens on port 0."""
    import shutil

    from mpc.identity import init_certificates

    root = Path(__file__).resolve().parents[2]
    folder = tmp_path / "parties"
    shutil.copytree(root / "parties", folder, ignore=shutil.ignore_patterns("certs", "*.sqlite*"))
    init_certificates(folder / "certs", ["a", "b", "c"])
    for config in folder.glob("*.toml"):
        text = config.read_text()
        config.write_text(re.sub(r'listen = "127\.0\.0\.1:\d+"', 'listen = "127.0.0.1:0"', text))
    return folder


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)


def test_servers_say_where_they_listen_and_leave_no_wal_files(tmp_path: Path) -> None:
    folder = _hand_deployment(tmp_path)
    ready = tmp_path / "ready.json"
    proc = _serve(
        "coordinator",
        "serve",
        "--config",
        str(folder / "coordinator.toml"),
        "--ready-file",
        str(ready),
    )
    try:
        _wait_for(ready, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    port = json.loads(ready.read_text())["port"]
    assert f"listening on 127.0.0.1:{port}" in err  # at the default log level
    database = folder / "coordinator.sqlite"
    assert database.exists()
    assert not database.with_name(database.name + "-wal").exists()
    assert not database.with_name(database.name + "-shm").exists()


def _one_error_line(err: str) -> str:
    """stderr of a failed command: one `error:` line and no traceback (gRPC core's own log
    lines, which start with a severity letter and a date, are allowed)."""
    assert "Traceback" not in err, err
    ours = [line for line in err.splitlines() if not re.match(r"[EWI]\d{4} ", line)]
    assert len(ours) == 1 and ours[0].startswith("error: "), err
    return ours[0]


def test_a_busy_port_is_one_error_line(tmp_path: Path) -> None:
    folder = _hand_deployment(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = folder / "party-a.toml"
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        proc = subprocess.run(
            [sys.executable, "-m", "mpc", "party", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _one_error_line(proc.stderr)


def test_a_corrupt_coordinator_database_is_one_error_line(tmp_path: Path) -> None:
    folder = _hand_deployment(tmp_path)
    (folder / "coordinator.sqlite").write_bytes(b"not a database, " * 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc",
            "coordinator",
            "serve",
            "--config",
            str(folder / "coordinator.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "cannot open the coordinator database" in _one_error_line(proc.stderr)
