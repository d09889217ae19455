"""Benchmark: the same secure sum in mpc, MPyC, Flower SecAgg+ and CrypTen, beside raw gRPC.

    .venv/bin/python bench/peers.py [--lengths 1000,100000,1000000] [--parties 3] [--repeats 5]
                                    [--json] [--limit-s 60] [--flower-python PATH] [--keep DIR]

Every system sums one float64 vector of length L per party (values in [-1, 1], the vectors
of bench/secure_sum.py), n parties on 127.0.0.1, and every result is checked against numpy's
sum (max abs error printed; a result outside the system's own precision is flagged WRONG).
One after the other (not interleaved), each a median of --repeats runs after one warm-up:

* raw gRPC and mpc: ``bench.secure_sum.run_party_count`` (LocalCluster + raw gRPC parties,
  interleaved as in that benchmark);
* MPyC: n processes of bench/peers_mpyc.py (``-M n -I i``, started by bench/peers_run.py),
  timed inside party 0 from after connection setup and a barrier to the opened output;
* Flower SecAgg+: bench/peers_flower.py in the interpreter given by --flower-python (flwr
  needs protobuf < 7, mpc protobuf 7: a separate virtualenv), a Ray simulation timing the
  SecAgg+ fit workflow of one round server-side;
* CrypTen: only if importable here; it does not install next to mpc (see bench/README.md).

A peer is skipped at a length when one run there took, or would take by linear extrapolation
from the previous length, more than --limit-s seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

try:
    from bench import secure_sum
    from bench.peers_run import (
        PEERS,
        Cell,
        crypten_unavailable,
        flower_unavailable,
        log,
        mpyc_unavailable,
        run_flower,
        run_mpyc,
        too_slow,
    )
except ImportError:  # run as a script: bench/ itself is sys.path[0]
    import secure_sum  # type: ignore[no-redef]
    from peers_run import (  # type: ignore[no-redef]
        PEERS,
        Cell,
        crypten_unavailable,
        flower_unavailable,
        log,
        mpyc_unavailable,
        run_flower,
        run_mpyc,
        too_slow,
    )

# --- reporting --------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def cell_text(cell: Cell) -> str:
    text = fmt_ms(cell.ms)
    if cell.wrong:
        text += " WRONG"
    return text


def ratio_text(cell: Cell, raw: float) -> str:
    if cell.ms is None or cell.wrong:
        return "-"
    return f"{cell.ms / raw:.1f}x" if cell.ms / raw < 100 else f"{cell.ms / raw:.0f}x"


def print_table(
    lengths: list[int], raw: dict[int, float], cells: dict[str, dict[int, Cell]]
) -> None:
    header = ["L", "raw gRPC ms"]
    header += [f"{p} ms" for p in PEERS] + [f"{p}/raw" for p in PEERS]
    rows = []
    for length in lengths:
        row = [str(length), fmt_ms(raw[length])]
        row += [cell_text(cells[p][length]) for p in PEERS]
        row += [ratio_text(cells[p][length], raw[length]) for p in PEERS]
        rows.append(row)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for peer in PEERS:
        for length in lengths:
            cell = cells[peer][length]
            error = "" if cell.max_abs_error is None else f"max |error| {cell.max_abs_error:.2g}"
            parts = [x for x in (error, cell.note, "WRONG RESULT" if cell.wrong else "") if x]
            if parts:
                print(f"  {peer} L={length}: " + "; ".join(parts))


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=secure_sum.int_list, default=[1000, 100_000, 1_000_000])
    parser.add_argument("--parties", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit-s", type=float, default=60.0, help="skip runs slower than this")
    parser.add_argument("--flower-python", help="python of a virtualenv with flwr[simulation]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", type=Path, help="use and keep this workdir (logs, data)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.parties < 3:
        parser.error("--parties: at least 3 (Flower SecAgg+ needs 3 shares)")
    lengths = sorted(args.lengths)
    n = args.parties

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_before = os.getloadavg()
    workroot = args.keep or Path(tempfile.mkdtemp(prefix="mpc-peers-"))
    started = time.monotonic()
    cells: dict[str, dict[int, Cell]] = {p: {} for p in PEERS}
    raw: dict[int, float] = {}
    try:
        # mpc and raw gRPC (this also writes the vectors every peer reads).
        try:
            rows, _ = secure_sum.run_party_count(n, lengths, args.repeats, workroot, 0)
        except secure_sum.ResultMismatch as exc:
            log(f"WRONG RESULT (mpc or raw gRPC): {exc}")
            return 2
        for row in rows:
            raw[row.length] = row.raw
            cells["mpc"][row.length] = Cell(
                samples_ms=row.secure_ms, max_abs_error=row.secure_max_error
            )
        data_dir = workroot / "data"

        previous: tuple[int, Cell] | None = None
        missing = mpyc_unavailable()
        for length in lengths:
            skip = missing or too_slow(previous, length, args.limit_s)
            cell = (
                Cell(note=skip)
                if skip
                else run_mpyc(n, length, args.repeats, args.limit_s, workroot)
            )
            cells["MPyC"][length] = cell
            previous = (length, cell)
            log(f"  MPyC L={length}: {fmt_ms(cell.ms)} ms {cell.note}")

        why = flower_unavailable(args.flower_python)
        previous = None
        for length in lengths:
            skip = why or too_slow(previous, length, args.limit_s)
            if skip:
                cell = Cell(note=skip)
            else:
                cell = run_flower(
                    args.flower_python, n, length, args.repeats, args.limit_s, data_dir, workroot
                )
            cells["Flower"][length] = cell
            previous = (length, cell)
            log(f"  Flower L={length}: {fmt_ms(cell.ms)} ms {cell.note}")

        why = crypten_unavailable()
        for length in lengths:
            cells["CrypTen"][length] = Cell(note=why)
    finally:
        if args.keep is None:
            shutil.rmtree(workroot, ignore_errors=True)
    elapsed = time.monotonic() - started
    wrong = any(c.wrong for peer in cells.values() for c in peer.values())

    if args.json:
        print(
            json.dumps(
                {
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "loadavg_1min_before": load_before[0],
                        "loadavg_1min_after": os.getloadavg()[0],
                    },
                    "parties": n,
                    "repeats": args.repeats,
                    "limit_s": args.limit_s,
                    "results": [
                        {
                            "length": length,
                            "raw_grpc_ms": raw[length],
                            **{
                                peer: {
                                    **cells[peer][length].summary(),
                                    "over_raw_grpc": (
                                        None
                                        if cells[peer][length].ms is None
                                        else cells[peer][length].ms / raw[length]  # type: ignore[operator]
                                    ),
                                }
                                for peer in PEERS
                            },
                        }
                        for length in lengths
                    ],
                    "elapsed_seconds": elapsed,
                },
                indent=2,
            )
        )
        return 2 if wrong else 0

    print(
        f"secure sum of L float64 per party, {n} parties on 127.0.0.1, median of "
        f"{args.repeats} runs after 1 warm-up; {os.cpu_count()} CPUs; 1-min load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print_table(lengths, raw, cells)
    print(f"\n{'SOME RESULT WRONG' if wrong else 'all results verified'}; total {elapsed:.0f} s")
    return 2 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
