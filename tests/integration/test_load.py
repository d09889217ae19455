"""Bounded load: many concurrent clients all get served, and watchers never starve others.

Figures (latency percentiles) are printed and written to /tmp/notes/load_figures.json.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.client import Client
from mpc.demo.cluster import LocalCluster
from mpc.errors import MpcError
from mpc.proto.v1 import coordinator_pb2
from tests.integration.conftest import ClusterFactory
from tests.integration.test_ownership import add_identities, client_as

pytestmark = [pytest.mark.integration, pytest.mark.load]

FIGURES = Path("/tmp/notes/load_figures.json")
COUNT = coordinator_pb2.Query(statistic="count", dataset="people")


def _record(figures: dict[str, object]) -> None:
    print(json.dumps(figures, indent=2))
    try:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
        FIGURES.write_text(json.dumps({**old, **figures}, indent=2) + "\n")
    except (OSError, ValueError) as exc:  # the figures are a by-product; never fail on them
        print(f"could not write {FIGURES}: {exc}")


def test_hundred_concurrent_clients_all_complete(make_cluster: ClusterFactory) -> None:
    clients = 100
    cluster = make_cluster(rows=20, job_timeout=60.0, rpc_timeout=20.0)
    names = [f"load-{i:03d}" for i in range(clients)]
    add_identities(cluster.tls_dir, names)
    start = threading.Barrier(clients, timeout=60.0)

    def one(name: str) -> float:
        with client_as(cluster, name, timeout=60.0) as client:
            start.wait()  # every client connects and submits at the same moment
            began = time.monotonic()
            assert client.count("people").value > 0
            return time.monotonic() - began

    began = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, name) for name in names]
        outcomes: list[float | str] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=90.0))
            except (MpcError, AssertionError) as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
    wall = time.monotonic() - began
    failures = [o for o in outcomes if isinstance(o, str)]
    latencies = np.array([o for o in outcomes if isinstance(o, float)])
    figures = {
        "concurrent_clients": clients,
        "completed": int(latencies.size),
        "wall_seconds": round(wall, 2),
    }
    if latencies.size:
        figures |= {
            "latency_p50_seconds": round(float(np.percentile(latencies, 50)), 3),
            "latency_p95_seconds": round(float(np.percentile(latencies, 95)), 3),
            "latency_max_seconds": round(float(latencies.max()), 3),
        }
    _record({"hundred_clients": figures})
    assert not failures, failures[:5]
    assert latencies.size == clients


def test_stalled_watchers_do_not_delay_other_calls(make_cluster: ClusterFactory) -> None:
    watchers = 40
    cluster = make_cluster(rows=20, job_timeout=120.0, rpc_timeout=90.0)
    names = [f"watch-{i:02d}" for i in range(watchers)]
    add_identities(cluster.tls_dir, [*names, "other"])
    with client_as(cluster, "other", timeout=30.0) as other:
        _stalled_watchers(cluster, other, names)


def _stalled_watchers(cluster: LocalCluster, other: Client, names: list[str]) -> None:
    watchers = len(names)
    finished = other.count("people").job_id
    subscribed = threading.Semaphore(0)
    outcomes: list[str] = []
    lock = threading.Lock()

    def watch(name: str, job_id: str) -> None:
        state = "no event"
        try:
            with client_as(cluster, name, timeout=120.0) as client:
                for event in client.watch(job_id):
                    if state == "no event":
                        subscribed.release()
                    state = event.state.value
        except MpcError as exc:
            state = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(state)

    cluster.signal("a", signal.SIGSTOP)  # every new job stalls on party a
    threads: list[threading.Thread] = []
    try:
        for name in names:
            with client_as(cluster, name) as client:
                job_id = client.submit(COUNT)
            thread = threading.Thread(target=watch, args=(name, job_id), daemon=True)
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + 30.0
        for _ in names:  # every watch stream is open on the coordinator
            assert subscribed.acquire(timeout=max(0.0, deadline - time.monotonic()))
        timings = []
        for _ in range(5):
            began = time.monotonic()
            assert other.result(finished).value > 0
            timings.append(time.monotonic() - began)
        began = time.monotonic()
        assert other.jobs()[0].job_id == finished
        list_seconds = time.monotonic() - began
    finally:
        cluster.signal("a", signal.SIGCONT)
    _record(
        {
            "stalled_watchers": {
                "watchers": watchers,
                "get_result_seconds_max": round(max(timings), 3),
                "get_result_seconds_median": round(float(np.median(timings)), 3),
                "list_jobs_seconds": round(list_seconds, 3),
            }
        }
    )
    assert max(timings) < 1.0, timings
    assert list_seconds < 1.0
    for thread in threads:  # with party a back, every stalled job finishes
        thread.join(timeout=max(0.1, deadline + 60.0 - time.monotonic()))
    assert sorted(outcomes) == ["succeeded"] * watchers, outcomes
