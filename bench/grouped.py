"""Benchmark: a grouped mean over a large Parquet table, pushed down into the party's engine.

    .venv/bin/python bench/grouped.py [--rows 100000000] [--small-rows 100000] [--repeats 3]
                                      [--data DIR] [--json]

Party ``a`` holds ``--rows`` rows in one Parquet file; parties ``b`` and ``c`` hold
``--small-rows`` rows each (the same generator, other seeds). Columns: ``region`` (10
categories ``g0`` .. ``g9``) and ``x1`` .. ``x5`` (values in [0, 100)). The files are generated
once by DuckDB into ``--data`` (default: a folder under the system temp dir, reused between
runs; ~31 bytes a row) and never committed.

Timed, interleaved, ``--repeats`` times each (medians reported):

* **secure**: ``client.mean("rows", x1..x5, group_by=["region"])`` on a 3-party
  ``mpc.LocalCluster`` (exact grouped release allowed by the parties' ``exact_filters``), from
  submit to the revealed table; the parties push the per-group clamped, encoded sums down into
  DuckDB over their Parquet file (``source = "parquet"``);
* **duckdb**: the same grouped means with DuckDB over the pooled files (all three), in this
  process, with the same two threads the party uses;
* **pandas**: ``pyarrow.parquet.read_table(..., read_dictionary=["region"])`` of the pooled
  files, then ``groupby("region").mean()`` (read included: that is what a pandas user pays).

Party ``a``'s peak memory (VmHWM, reset before each secure job through /proc/PID/clear_refs) is
reported beside the target of 1 GiB. Every secure result is checked against DuckDB's within
the result's tolerance (exit 2 if not).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_PEAK_BYTES = 1 << 30
TARGET_SECURE_OVER_DUCKDB = 2.0
COLUMNS = ["x1", "x2", "x3", "x4", "x5"]
REGIONS = [f"g{i}" for i in range(10)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(path: Path, rows: int, seed: int) -> None:
    """``rows`` deterministic rows (DuckDB's hash of the row number and a seed) as Parquet."""
    import duckdb

    if path.exists():
        return
    log(f"generating {rows:,} rows into {path} ...")
    started = time.perf_counter()
    values = ", ".join(
        f"(hash(i * 7 + {k} + {seed} * 1000003) % 1000000) / 10000.0 AS {c}"
        for k, c in enumerate(COLUMNS, start=1)
    )
    partial = path.with_suffix(".partial")
    with duckdb.connect() as con:
        con.execute("SET threads = 2")
        con.execute(
            f"COPY (SELECT 'g' || (hash(i + {seed} * 7919) % 10)::VARCHAR AS region, {values} "
            f"FROM range({rows}) t(i)) TO '{partial}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)"
        )
    partial.rename(path)
    log(f"  done in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")


def duckdb_grouped(paths: list[Path]) -> tuple[float, dict[str, list[float]]]:
    import duckdb

    files = ", ".join(f"'{p}'" for p in paths)
    means = ", ".join(f"avg({c})" for c in COLUMNS)
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute("SET threads = 2")
        rows = con.execute(
            f"SELECT region, {means} FROM read_parquet([{files}]) GROUP BY region"
        ).fetchall()
    elapsed = time.perf_counter() - started
    return elapsed, {str(r[0]): [float(v) for v in r[1:]] for r in rows}


def pandas_grouped(paths: list[Path]) -> float:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    started = time.perf_counter()
    table = pa.concat_tables(
        [pq.read_table(p, columns=["region", *COLUMNS], read_dictionary=["region"]) for p in paths]
    )
    frame = table.to_pandas()
    del table
    frame.groupby("region", observed=True)[COLUMNS].mean()
    return time.perf_counter() - started


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


def peak_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10**8, help="rows at party a")
    parser.add_argument("--small-rows", type=int, default=10**5, help="rows at parties b, c")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "mpc-bench")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--skip-pandas", action="store_true", help="pandas needs ~40 B a row")
    args = parser.parse_args(argv)

    import mpc

    args.data.mkdir(parents=True, exist_ok=True)
    sizes = {"a": args.rows, "b": args.small_rows, "c": args.small_rows}
    paths = {p: args.data / f"grouped_{n}_{p}.parquet" for p, n in sizes.items()}
    for seed, (party, path) in enumerate(paths.items()):
        generate(path, sizes[party], seed)

    bounds = {c: (0.0, 100.0) for c in COLUMNS}
    total = sum(sizes.values())
    options = {
        "bounds": bounds,
        "categories": {"region": REGIONS},
        "exact_filters": True,
        "max_rows": max(total, 1),
    }
    secure, duck, pand, peaks = [], [], [], []
    with (
        mpc.LocalCluster({p: {"rows": path} for p, path in paths.items()}, **options) as cluster,
        cluster.client() as client,
    ):
        pid_a = cluster.processes["a"].pid
        log("warm-up (the parties validate their files) ...")
        client.mean("rows", COLUMNS, group_by=["region"])
        for repeat in range(args.repeats):
            reset_peak(pid_a)
            started = time.perf_counter()
            result = client.mean("rows", COLUMNS, group_by=["region"])
            secure.append(time.perf_counter() - started)
            peaks.append(peak_bytes(pid_a))
            seconds, reference = duckdb_grouped(list(paths.values()))
            duck.append(seconds)
            if not args.skip_pandas:
                pand.append(pandas_grouped(list(paths.values())))
            table = result.to_pandas()
            for region, means in reference.items():
                got = table.loc[region, COLUMNS].to_numpy(dtype=np.float64)
                if not np.allclose(got, means, rtol=0, atol=max(result.tolerance, 1e-9) + 1e-9):
                    log(f"MISMATCH in {region}: {got} vs {means}")
                    return 2
            log(
                f"repeat {repeat + 1}/{args.repeats}: secure {secure[-1]:.2f} s, "
                f"duckdb {duck[-1]:.2f} s" + (f", pandas {pand[-1]:.2f} s" if pand else "")
            )

    summary = {
        "rows": sizes,
        "secure_s": statistics.median(secure),
        "duckdb_pooled_s": statistics.median(duck),
        "pandas_pooled_s": statistics.median(pand) if pand else None,
        # The median of each repeat's own ratio: the two run back to back, so load that
        # comes and goes on a shared machine hits both sides of a ratio alike.
        "secure_over_duckdb": statistics.median(s / d for s, d in zip(secure, duck, strict=True)),
        "secure_over_pandas": (
            statistics.median(s / p for s, p in zip(secure, pand, strict=True)) if pand else None
        ),
        "party_a_peak_bytes": max(peaks),
        "targets": {
            "secure_over_duckdb": TARGET_SECURE_OVER_DUCKDB,
            "party_peak_bytes": TARGET_PEAK_BYTES,
        },
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    ratio = summary["secure_over_duckdb"]
    print(f"grouped mean, 5 columns x 10 groups; party a holds {args.rows:,} rows (Parquet)")
    print(
        f"  secure job         {summary['secure_s']:8.2f} s   {ratio:5.2f}x DuckDB "
        f"(target <= {TARGET_SECURE_OVER_DUCKDB}x)"
    )
    print(f"  DuckDB, pooled     {summary['duckdb_pooled_s']:8.2f} s")
    if pand:
        print(
            f"  pandas, pooled     {summary['pandas_pooled_s']:8.2f} s   (secure / pandas "
            f"{summary['secure_over_pandas']:.2f}x)"
        )
    print(f"  party a peak RSS   {max(peaks) / 2**20:8.0f} MiB (target < 1024 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
