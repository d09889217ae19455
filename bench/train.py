"""Training rounds per second: real coordinator and party processes (TLS on 127.0.0.1).

For d in (10, 30, 100) features and 3 and 5 parties, 10^4 rows per party, one logistic
regression job of ROUNDS gradient rounds; the median wall time of a round (secure sum of the
clipped per-example gradients at the current model, as measured by the coordinator) beside
one plaintext numpy gradient step on the pooled rows. Run: .venv/bin/python -m bench.train
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpc.demo.cluster import DatasetFile, LocalCluster

ROWS = 10_000


def make_data(seed: int, d: int, rows: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    x = gen.uniform(-1, 1, size=(rows, d))
    w = np.linspace(-1, 1, d)
    y = (x @ w + gen.logistic(size=rows) > 0).astype(np.float64)
    return np.column_stack([x, y])


def plaintext_ms(data: np.ndarray, repeats: int = 20) -> float:
    x = np.column_stack([np.ones(len(data)), data[:, :-1]])
    y = data[:, -1]
    w = np.zeros(x.shape[1])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        p = 1 / (1 + np.exp(-(x @ w)))
        w = w - 0.5 * (x.T @ (p - y) / len(y))
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def run(d: int, n: int, rounds: int, workdir: Path) -> tuple[float, float]:
    names = [f"x{i}" for i in range(d)] + ["y"]
    bounds = {c: (-1.0, 1.0) for c in names[:-1]} | {"y": (0.0, 1.0)}
    datasets = {}
    parts = []
    for i, pid in enumerate("abcde"[:n]):
        data = make_data(100 * d + i, d, ROWS)
        parts.append(data)
        path = workdir / f"{pid}.csv"
        np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt="%.6g")
        datasets[pid] = {"t": DatasetFile(path, max_rows=ROWS, bounds=bounds)}
    with (
        LocalCluster(workdir / "cluster", datasets, job_timeout=600.0) as cluster,
        cluster.client(timeout=600.0) as client,
    ):
        result = client.train(
            "logistic", "t", names[:-1], "y", rounds=rounds, standardise="bounds", clip=10.0
        )
    secure = statistics.median(c["ms"] for c in result.curve[1:])  # first round warms caches
    return secure, plaintext_ms(np.vstack(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--features", default="10,30,100")
    parser.add_argument("--parties", default="3,5")
    args = parser.parse_args()
    print(f"{'d':>4} {'parties':>7} {'secure ms/round':>16} {'rounds/s':>9} {'numpy ms/step':>14}")
    for d in (int(v) for v in args.features.split(",")):
        for n in (int(v) for v in args.parties.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                secure, plain = run(d, n, args.rounds, Path(tmp))
            print(f"{d:>4} {n:>7} {secure:>16.1f} {1000 / secure:>9.1f} {plain:>14.2f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
