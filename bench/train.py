"""Training rounds per second: real coordinator and party processes (TLS on 127.0.0.1).

For d in (10, 30, 100) features and 3 and 5 parties, 10^4 rows per party, one logistic
regression job of ROUNDS gradient rounds; the median wall time of a round (secure sum of the
clipped per-example gradients at the current model, as measured by the coordinator) beside
one plaintext numpy gradient step on the pooled rows and a raw gRPC round trip of the same
message sizes (bench/raw_grpc.py ``RoundTrip``: the round input out to every party, a reply
of the share's length back, over mutual TLS with the cluster's certificates).
Run: .venv/bin/python -m bench.train [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mpc import training as tr
from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.protocol.spec import Standardise

try:
    from bench import raw_grpc
except ImportError:  # run as a script: bench/ itself is sys.path[0]
    import raw_grpc  # type: ignore[no-redef]

ROWS = 10_000
RAW_REPEATS = 50  # raw round trips before and after the training job (each; ~1-5 ms apiece)


class ResultMismatch(Exception):
    pass


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def round_sizes(d: int) -> tuple[int, int]:
    """(round input words, share words) of one gradient-descent round with d features.

    The input is what the coordinator sends every party (``mpc.training.round_input``: the
    round kind, the scaling's means and scales, the model of d + 1 weights); the share is
    ``mpc.training.step_length`` for GD: the gradient (d + 1), the row count, the loss sum.
    """
    scaling = tr.Scaling(Standardise.BOUNDS, np.zeros(d), np.ones(d))
    payload = tr.round_input(tr.KIND_STEP, scaling, np.zeros(d + 1))
    return int(payload.size), d + 3


@dataclass
class TrainRound:
    d: int
    parties: int
    rows_per_party: int
    rounds: int
    input_words: int
    share_words: int
    secure_samples_ms: list[float] = field(default_factory=list)  # per round, first dropped
    raw_samples_ms: list[float] = field(default_factory=list)
    plaintext_ms: float = 0.0

    @property
    def secure_ms(self) -> float:
        return statistics.median(self.secure_samples_ms)

    @property
    def raw_ms(self) -> float:
        return statistics.median(self.raw_samples_ms)

    def summary(self) -> dict[str, object]:
        return asdict(self) | {
            "secure_ms_per_round": self.secure_ms,
            "raw_round_trip_ms": self.raw_ms,
            "secure_over_raw": self.secure_ms / self.raw_ms,
        }


def raw_round_trips(
    aggregator: raw_grpc.RawAggregator, n: int, payload: np.ndarray, reply: int, count: int
) -> list[float]:
    expected = raw_grpc.expected_round_trip(n, payload.size, reply)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        total = aggregator.round_trip(payload, reply)
        times.append((time.perf_counter() - start) * 1000)
        if not np.array_equal(total, expected):
            raise ResultMismatch("raw round trip: the summed replies differ from what was sent")
    return times


def measure(
    d: int, n: int, rounds: int, workdir: Path, raw_repeats: int = RAW_REPEATS
) -> TrainRound:
    """One training job on a fresh LocalCluster, with raw round trips before and after it."""
    names = [f"x{i}" for i in range(d)] + ["y"]
    bounds = {c: (-1.0, 1.0) for c in names[:-1]} | {"y": (0.0, 1.0)}
    datasets = {}
    parts = []
    workdir.mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate("abcde"[:n]):
        data = make_data(100 * d + i, d, ROWS)
        parts.append(data)
        path = workdir / f"{pid}.csv"
        np.savetxt(path, data, delimiter=",", header=",".join(names), comments="", fmt="%.6g")
        datasets[pid] = {"t": DatasetFile(path, max_rows=ROWS, bounds=bounds)}
    input_words, share_words = round_sizes(d)
    out = TrainRound(d, n, ROWS, rounds, input_words, share_words)
    # A model-like payload: the bytes do not matter to the transport, only their number.
    payload = np.linspace(-1.0, 1.0, input_words)
    with (
        LocalCluster(workdir / "cluster", datasets, job_timeout=600.0) as cluster,
        # Started before this process opens any gRPC channel (forking next to live gRPC
        # threads can break the child's event engine).
        raw_grpc.RawParties(workdir / "raw", cluster.tls_dir, {pid: {} for pid in datasets}) as rp,
        raw_grpc.RawAggregator(cluster.tls_dir, rp.addresses) as aggregator,
        cluster.client(timeout=600.0) as client,
    ):
        raw_round_trips(aggregator, n, payload, share_words, 3)  # warm-up: channels connected
        out.raw_samples_ms += raw_round_trips(aggregator, n, payload, share_words, raw_repeats)
        result = client.train(
            "logistic", "t", names[:-1], "y", rounds=rounds, standardise="bounds", clip=10.0
        )
        out.raw_samples_ms += raw_round_trips(aggregator, n, payload, share_words, raw_repeats)
    if len(result.curve) < 2 or not all(np.isfinite(c["loss"]) for c in result.curve):
        raise ResultMismatch(f"training returned {len(result.curve)} rounds or a non-finite loss")
    out.secure_samples_ms = [c["ms"] for c in result.curve[1:]]  # first round warms caches
    out.plaintext_ms = plaintext_ms(np.vstack(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--features", default="10,30,100")
    parser.add_argument("--parties", default="3,5")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds: at least 2 (the first round is a warm-up)")
    results = []
    if not args.json:
        header = f"{'d':>4} {'parties':>7} {'secure ms/round':>16} {'rounds/s':>9} "
        print(header + f"{'raw RTT ms':>11} {'secure/raw':>11} {'numpy ms/step':>14}")
    try:
        for d in (int(v) for v in args.features.split(",")):
            for n in (int(v) for v in args.parties.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    log(f"d={d} parties={n}: {args.rounds} rounds")
                    got = measure(d, n, args.rounds, Path(tmp))
                results.append(got)
                if not args.json:
                    s, r = got.secure_ms, got.raw_ms
                    print(
                        f"{d:>4} {n:>7} {s:>16.1f} {1000 / s:>9.1f} {r:>11.2f} "
                        f"{s / r:>10.1f}x {got.plaintext_ms:>14.2f}",
                        flush=True,
                    )
    except ResultMismatch as exc:
        log(f"WRONG RESULT: {exc}")
        return 2
    if args.json:
        print(json.dumps({"results": [r.summary() for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
