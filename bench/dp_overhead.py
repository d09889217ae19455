"""Benchmark: overhead of distributed DP noise over the plain secure sum (histograms).

    .venv/bin/python bench/dp_overhead.py [--lengths 1000,1000000] [--rows 100000]
                                          [--repeats 5] [--json] [--keep DIR]

One LocalCluster (coordinator + 3 party processes, mutual TLS on 127.0.0.1). Every party
holds one table of ``--rows`` deterministic values in [0, 1). For each output length L the
same histogram with L equal-width bins over [0, 1] is timed, after one warm-up each:

* plain: ``client.histogram("t", "x", edges)`` (no noise);
* DP:    ``client.histogram("t", "x", edges, epsilon=1, noise="distributed")``: every party
         samples L exact discrete Gaussians and adds them to its counts before masking.

No budgets are configured, so DP jobs are never refused; every party's ``max_bins`` admits
the largest L. Each figure is the median of the repeats (plain and DP interleaved), from
submit to the result fetched by the client. Plain results are checked against
numpy.histogram with the coordinator's small-cell rule applied (counts in (0, 3) -> NaN;
exit 2 if not). Target: DP / plain <= 1.5 at L = 10^6.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mpc.client import QueryResult
from mpc.coordinator.outcome import suppress_small_cells
from mpc.demo.cluster import DatasetFile, LocalCluster

PARTIES = "abc"
TARGET_RATIO = 1.5  # at L = 10^6
#: The coordinator's small-cell rule (its default, set explicitly): exact counts in (0, 3)
#: come back as NaN, so the reference applies the same rule to numpy's counts.
MIN_CELL_COUNT = 3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def party_values(index: int, rows: int) -> np.ndarray:
    """Deterministic values in [0, 1): a low-discrepancy sequence, shifted per party."""
    golden = (np.sqrt(5.0) - 1) / 2
    return np.mod(np.arange(rows, dtype=np.float64) * golden + index / 7, 1.0)


def timed(call: object) -> tuple[float, QueryResult]:
    assert callable(call)
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def run(lengths: list[int], rows: int, repeats: int, workdir: Path) -> list[dict[str, float]]:
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    datasets = {}
    pooled = []
    for index, pid in enumerate(PARTIES):
        values = party_values(index, rows)
        pooled.append(values)
        path = workdir / "data" / f"{pid}.csv"
        np.savetxt(path, values, header="x", comments="", fmt="%.17g")
        # max_bins: the party's cap on histogram bins (default 1024) must admit the largest L.
        datasets[pid] = {
            "t": DatasetFile(path, max_rows=rows, bounds={"x": (0.0, 1.0)}, max_bins=max(lengths))
        }
    everything = np.concatenate(pooled)
    table = []
    with (
        LocalCluster(
            workdir / "cluster",
            datasets,
            job_timeout=300,
            rpc_timeout=120,
            min_cell_count=MIN_CELL_COUNT,
        ) as cluster,
        cluster.client() as client,
    ):
        for length in lengths:
            edges = np.linspace(0.0, 1.0, length + 1).tolist()
            counts, _ = np.histogram(everything, bins=edges)
            expected = suppress_small_cells(counts, MIN_CELL_COUNT)

            def plain(edges: list[float] = edges) -> QueryResult:
                return client.histogram("t", "x", edges)

            def private(edges: list[float] = edges) -> QueryResult:
                return client.histogram("t", "x", edges, epsilon=1.0, noise="distributed")

            log(f"L = {length}: warm-up")
            for call in (plain, private):
                call()
            plain_ms, dp_ms = [], []
            for i in range(repeats):
                ms, result = timed(plain)
                if not np.array_equal(result.values, expected, equal_nan=True):
                    raise ResultMismatch(f"L = {length}: plain histogram differs from numpy")
                plain_ms.append(ms)
                ms, result = timed(private)
                assert result.privacy is not None and result.values.size == length
                dp_ms.append(ms)
                log(f"L = {length}: repeat {i + 1}/{repeats}: {plain_ms[-1]:.0f} / {ms:.0f} ms")
            p, d = statistics.median(plain_ms), statistics.median(dp_ms)
            table.append({"length": length, "plain_ms": p, "dp_ms": d, "ratio": d / p})
    return table


class ResultMismatch(Exception):
    pass


def _lengths(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=_lengths, default=[10**3, 10**6])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per party")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", metavar="DIR", help="keep data, certificates and logs in DIR")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mpc-dp-bench-"))
    try:
        table = run(args.lengths, args.rows, args.repeats, workdir)
    except ResultMismatch as exc:
        log(f"error: {exc}")
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"parties": len(PARTIES), "rows_per_party": args.rows, "table": table}))
        return 0
    print(
        f"histogram, {len(PARTIES)} parties, {args.rows} rows per party, median of {args.repeats}"
    )
    print(f"{'L (bins)':>10} {'plain ms':>10} {'DP ms':>10} {'DP/plain':>9}")
    for row in table:
        print(
            f"{row['length']:>10} {row['plain_ms']:>10.1f} {row['dp_ms']:>10.1f} "
            f"{row['ratio']:>9.2f}"
        )
    big = [r for r in table if r["length"] == 10**6]
    if big:
        verdict = "met" if big[0]["ratio"] <= TARGET_RATIO else "NOT met"
        print(f"target DP/plain <= {TARGET_RATIO} at L = 10^6: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
