"""Benchmark: secure vector sum against plaintext numpy and a raw gRPC transfer.

    .venv/bin/python bench/secure_sum.py [--lengths 1000,100000,1000000] [--parties 3,5]
                                         [--repeats 5] [--json] [--keep DIR]

For every party count n, one LocalCluster (coordinator + n party processes, mutual TLS on
127.0.0.1) and n raw-gRPC party processes (bench/raw_grpc.py) are started once. Every party
holds one deterministic float64 vector per length L (values in [-1, 1]). After one warm-up
per L (the secure parties then have the vector cached), each repeat times, interleaved:

* secure:    ``client.vector_sum("v<L>", bounds=(-1, 1))``, from submit to revealed result;
* raw gRPC:  the same 8*L bytes per party streamed unprotected over the same kind of channel
             to one aggregator pulling from all n concurrently, summed with numpy;
* plaintext: numpy adding the same n vectors in this process.

Every secure result is checked against numpy within ``result.tolerance`` (exit 2 if not).
For the memory length (10^6, or the largest given) each party's peak RSS increase during
each secure job is measured through /proc/PID/clear_refs + VmHWM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mpc.client import Client, QueryResult
from mpc.coordinator.service import JobEvent
from mpc.demo.cluster import DatasetFile, LocalCluster

try:
    from bench import raw_grpc
except ImportError:  # run as a script: bench/ itself is sys.path[0]
    import raw_grpc  # type: ignore[no-redef]

BOUNDS = (-1.0, 1.0)
MEMORY_LENGTH = 10**6
TARGET_SECURE_OVER_RAW = 1.5  # at L = 10^6 with 3 parties
TARGET_PEAK_OVER_INPUT = 4.0
PLAINTEXT_MIN_REPEATS = 25  # microseconds each: more samples cost nothing


class ResultMismatch(Exception):
    pass


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def party_ids(n: int) -> list[str]:
    return [f"party-{i}" for i in range(n)]


def make_vector(party_index: int, length: int) -> np.ndarray:
    """Deterministic float64 data in [-1, 1] for one party and one length."""
    return np.random.default_rng([20240601, party_index, length]).uniform(-1.0, 1.0, length)


def dataset_name(length: int) -> str:
    return f"v{length}"


# --- /proc memory ---------------------------------------------------------------------------


def read_status_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class MemorySample:
    party: str
    rss_before_kb: int
    hwm_after_kb: int
    rss_after_kb: int
    increase_kb: int


@dataclass
class MemoryReport:
    n: int
    length: int
    input_bytes: int
    method: str  # "clear_refs" or "idle-baseline"
    idle_rss_kb: dict[str, int]
    samples: list[MemorySample] = field(default_factory=list)

    def per_party_max(self) -> dict[str, MemorySample]:
        best: dict[str, MemorySample] = {}
        for sample in self.samples:
            if sample.party not in best or sample.increase_kb > best[sample.party].increase_kb:
                best[sample.party] = sample
        return best

    def max_hwm_kb(self) -> int:
        return max((s.hwm_after_kb for s in self.samples), default=0)

    def max_ratio(self) -> float:
        if not self.samples:
            return float("nan")
        return max(s.increase_kb * 1024 for s in self.samples) / self.input_bytes


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Row:
    n: int
    length: int
    secure_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    secure_cpu_ms: list[float] = field(default_factory=list)
    raw_cpu_ms: list[float] = field(default_factory=list)
    secure_max_error: float = 0.0
    tolerance: float = 0.0
    stages_ms: list[dict[str, float]] = field(default_factory=list)

    @property
    def secure(self) -> float:
        return statistics.median(self.secure_ms)

    @property
    def raw(self) -> float:
        return statistics.median(self.raw_ms)

    @property
    def plain(self) -> float:
        return statistics.median(self.plain_ms)

    def summary(self) -> dict[str, object]:
        return {
            "n": self.n,
            "length": self.length,
            "secure_ms": self.secure,
            "plaintext_ms": self.plain,
            "raw_grpc_ms": self.raw,
            "secure_over_plaintext": self.secure / self.plain,
            "secure_over_raw_grpc": self.secure / self.raw,
            "secure_cpu_ms_mean": statistics.fmean(self.secure_cpu_ms),
            "raw_grpc_cpu_ms_mean": statistics.fmean(self.raw_cpu_ms),
            "secure_samples_ms": self.secure_ms,
            "raw_grpc_samples_ms": self.raw_ms,
            "plaintext_samples_ms": self.plain_ms,
            "secure_max_abs_error": self.secure_max_error,
            "tolerance": self.tolerance,
            "secure_stage_ms_median": median_stages(self.stages_ms),
        }


def median_stages(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in samples[0]] if samples else []
    return {k: statistics.median(s[k] for s in samples if k in s) for k in keys}


def plaintext_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = np.add(vectors[0], vectors[1]) if len(vectors) > 1 else vectors[0].copy()
    for vector in vectors[2:]:
        np.add(total, vector, out=total)
    return total


def check_secure(result: QueryResult, reference: np.ndarray, what: str) -> tuple[float, float]:
    values = np.asarray(result.values)
    tolerance = float(result.tolerance)
    if values.shape != reference.shape:
        raise ResultMismatch(f"{what}: result shape {values.shape}, expected {reference.shape}")
    error = float(np.max(np.abs(values - reference)))
    # The tolerance bounds the fixed-point rounding; 1e-9 covers numpy's own float rounding.
    if not error <= tolerance + 1e-9:
        raise ResultMismatch(f"{what}: max |error| {error:.3g} exceeds tolerance {tolerance:.3g}")
    return error, tolerance


def check_raw(total: np.ndarray, reference: np.ndarray, what: str) -> None:
    error = float(np.max(np.abs(total - reference)))
    if total.shape != reference.shape or not error <= 1e-9:
        raise ResultMismatch(f"{what}: raw gRPC sum differs from numpy by {error:.3g}")


def stage_times(events: list[tuple[float, str]], total_ms: float) -> dict[str, float]:
    """Client-side stage breakdown from the job's events (ms between consecutive events)."""
    out: dict[str, float] = {}
    previous_t, previous_stage = 0.0, "submit"
    for t, stage in events:
        out[previous_stage] = out.get(previous_stage, 0.0) + (t - previous_t)
        previous_t, previous_stage = t, stage
    out["done->result fetched"] = total_ms - previous_t
    return out


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of other processes (all their threads, also finished ones).

    The kernel accounts it in clock ticks (10 ms), so only a mean over several runs means much.
    """
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    return time.process_time()  # all threads of this process, nanosecond clock


def secure_run(
    client: Client,
    name: str,
    reference: np.ndarray,
    what: str,
    row: Row,
    cpu_pids: list[int],
) -> None:
    """One timed secure job; records wall time, CPU time, stage breakdown and error."""
    events: list[tuple[float, str]] = []
    cpu_before = process_cpu_seconds(cpu_pids) + self_cpu_seconds()
    start = time.perf_counter()

    def on_event(event: JobEvent) -> None:
        events.append(((time.perf_counter() - start) * 1e3, event.stage))

    result = client.vector_sum(name, bounds=BOUNDS, on_event=on_event)
    ms = (time.perf_counter() - start) * 1e3
    cpu_ms = (process_cpu_seconds(cpu_pids) + self_cpu_seconds() - cpu_before) * 1e3
    error, tolerance = check_secure(result, reference, what)
    row.secure_ms.append(ms)
    row.secure_cpu_ms.append(cpu_ms)
    row.secure_max_error = max(row.secure_max_error, error)
    row.tolerance = tolerance
    row.stages_ms.append(stage_times(events, ms))


def raw_run(
    aggregator: raw_grpc.RawAggregator,
    name: str,
    length: int,
    reference: np.ndarray,
    what: str,
    row: Row,
    cpu_pids: list[int],
) -> None:
    cpu_before = process_cpu_seconds(cpu_pids) + self_cpu_seconds()
    start = time.perf_counter()
    total = aggregator.sum(name, length)
    ms = (time.perf_counter() - start) * 1e3
    cpu_ms = (process_cpu_seconds(cpu_pids) + self_cpu_seconds() - cpu_before) * 1e3
    check_raw(total, reference, what)
    row.raw_ms.append(ms)
    row.raw_cpu_ms.append(cpu_ms)


def write_data(
    ids: list[str], lengths: list[int], data_dir: Path
) -> tuple[
    dict[int, list[np.ndarray]], dict[str, dict[str, DatasetFile]], dict[str, dict[str, Path]]
]:
    data_dir.mkdir(parents=True, exist_ok=True)
    vectors: dict[int, list[np.ndarray]] = {}
    datasets: dict[str, dict[str, DatasetFile]] = {pid: {} for pid in ids}
    raw_data: dict[str, dict[str, Path]] = {pid: {} for pid in ids}
    for length in lengths:
        vectors[length] = []
        for index, pid in enumerate(ids):
            vector = make_vector(index, length)
            path = data_dir / f"{pid}-{dataset_name(length)}.npy"
            np.save(path, vector)
            vectors[length].append(vector)
            datasets[pid][dataset_name(length)] = DatasetFile(
                path, max_rows=1, kind="vector", bounds={"value": BOUNDS}
            )
            raw_data[pid][dataset_name(length)] = path
    return vectors, datasets, raw_data


def run_party_count(
    n: int, lengths: list[int], repeats: int, workdir: Path, memory_length: int
) -> tuple[list[Row], MemoryReport | None]:
    ids = party_ids(n)
    vectors, datasets, raw_data = write_data(ids, lengths, workdir / "data")
    references = {length: plaintext_sum(vs) for length, vs in vectors.items()}

    rows: list[Row] = []
    memory: MemoryReport | None = None
    log(f"n={n}: starting coordinator + {n} parties and {n} raw gRPC parties in {workdir}")
    with LocalCluster(workdir / "cluster", datasets) as cluster:
        pids = {pid: cluster.processes[pid].pid for pid in ids}
        secure_pids = [p.pid for p in cluster.processes.values()]  # coordinator + parties
        idle = {pid: read_status_kb(p)["VmRSS"] for pid, p in pids.items()}
        with (
            raw_grpc.RawParties(workdir / "raw", cluster.tls_dir, raw_data) as raw_parties,
            raw_grpc.RawAggregator(cluster.tls_dir, raw_parties.addresses) as aggregator,
            cluster.client() as client,
        ):
            raw_pids = [p.pid for p in raw_parties.processes.values()]
            for length in lengths:
                name = dataset_name(length)
                reference = references[length]
                row = Row(n, length)
                # Warm-up: parties load and cache the vector; channels and code paths are hot.
                check_secure(client.vector_sum(name, bounds=BOUNDS), reference, f"warm-up {name}")
                check_raw(aggregator.sum(name, length), reference, f"warm-up raw {name}")
                report: MemoryReport | None = None
                if length == memory_length:
                    resettable = all(reset_peak(p) for p in pids.values())
                    method = "clear_refs" if resettable else "idle-baseline"
                    report = memory = MemoryReport(n, length, 8 * length, method, idle)
                for rep in range(repeats):
                    # Interleaved, so slow drift of a shared machine hits all three alike.
                    before: dict[str, int] = {}
                    if report is not None:
                        for pid, p in pids.items():
                            if report.method == "clear_refs":
                                reset_peak(p)
                            before[pid] = read_status_kb(p)["VmRSS"]
                    what = f"n={n} {name} #{rep}"
                    secure_run(client, name, reference, what, row, secure_pids)
                    if report is not None:
                        for pid, p in pids.items():
                            status = read_status_kb(p)
                            base = before[pid] if report.method == "clear_refs" else idle[pid]
                            report.samples.append(
                                MemorySample(
                                    pid,
                                    before[pid],
                                    status["VmHWM"],
                                    status["VmRSS"],
                                    status["VmHWM"] - base,
                                )
                            )
                    raw_run(aggregator, name, length, reference, f"raw {what}", row, raw_pids)
                vs = vectors[length]
                for _ in range(max(repeats, PLAINTEXT_MIN_REPEATS)):
                    start = time.perf_counter()
                    plaintext_sum(vs)
                    row.plain_ms.append((time.perf_counter() - start) * 1e3)
                log(
                    f"  n={n} L={length}: secure {row.secure:.2f} ms, raw gRPC {row.raw:.2f} ms, "
                    f"plaintext {row.plain:.3f} ms"
                )
                rows.append(row)
    return rows, memory


# --- reporting --------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def print_table(rows: list[Row]) -> None:
    header = ("n", "L", "secure ms", "plaintext ms", "raw gRPC ms", "secure/plain", "secure/raw")
    lines = [
        (
            str(r.n),
            str(r.length),
            fmt_ms(r.secure),
            fmt_ms(r.plain),
            fmt_ms(r.raw),
            f"{r.secure / r.plain:.0f}x",
            f"{r.secure / r.raw:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


def print_cpu(rows: list[Row]) -> None:
    """CPU time summed over every process involved: robust to a busy machine, unlike wall time."""
    print("\nCPU time per run, all processes (secure: coordinator + parties + client; raw gRPC:")
    print("parties + aggregator), mean ms per run (kernel tick accounting, +-10 ms per process):")
    for r in rows:
        secure = statistics.fmean(r.secure_cpu_ms)
        raw = statistics.fmean(r.raw_cpu_ms)
        ratio = f"{secure / raw:.2f}x" if raw > 0 else "n/a"
        print(f"  n={r.n} L={r.length}: secure {secure:.0f}, raw gRPC {raw:.0f} ({ratio})")


def print_stages(rows: list[Row], length: int) -> None:
    print(f"\nsecure job stages at L={length} (client-side, median ms):")
    for row in rows:
        if row.length != length:
            continue
        stages = median_stages(row.stages_ms)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        print(f"  n={row.n}: {parts}")


def print_memory(reports: list[MemoryReport]) -> None:
    for report in reports:
        mib = report.input_bytes / 2**20
        print(
            f"\npeak RSS increase per party during a secure job, n={report.n}, "
            f"L={report.length} (input {mib:.1f} MiB per party), method {report.method}"
            + (
                ""
                if report.method == "clear_refs"
                else " (clear_refs failed: VmHWM minus idle RSS before the first job)"
            )
        )
        for pid, sample in sorted(report.per_party_max().items()):
            print(
                f"  {pid}: idle {report.idle_rss_kb[pid] / 1024:.1f} MiB, "
                f"before job {sample.rss_before_kb / 1024:.1f} MiB, "
                f"VmHWM {sample.hwm_after_kb / 1024:.1f} MiB, "
                f"peak increase {sample.increase_kb / 1024:.1f} MiB = "
                f"{sample.increase_kb * 1024 / report.input_bytes:.2f}x input"
            )
        print(
            f"  max over parties and repeats: {report.max_ratio():.2f}x input; "
            f"max VmHWM {report.max_hwm_kb() / 1024:.1f} MiB"
        )


def targets(rows: list[Row], reports: list[MemoryReport]) -> dict[str, object]:
    out: dict[str, object] = {}
    row = next((r for r in rows if r.n == 3 and r.length == MEMORY_LENGTH), None)
    if row is not None:
        ratio = row.secure / row.raw
        out["secure_over_raw_n3_L1e6"] = {
            "value": ratio,
            "target": TARGET_SECURE_OVER_RAW,
            "pass": ratio <= TARGET_SECURE_OVER_RAW,
        }
    if reports:
        worst = max(r.max_ratio() for r in reports)
        out["peak_memory_over_input"] = {
            "value": worst,
            "target": TARGET_PEAK_OVER_INPUT,
            "pass": worst < TARGET_PEAK_OVER_INPUT,
            "length": reports[0].length,
        }
    return out


def print_targets(result: dict[str, object]) -> None:
    print("\ntargets (informational):")
    if not result:
        print("  not measured (needs n=3 and L=1000000)")
    for key, item in result.items():
        assert isinstance(item, dict)
        verdict = "PASS" if item["pass"] else "FAIL"
        if key == "secure_over_raw_n3_L1e6":
            print(
                f"  secure/raw gRPC at L=10^6, n=3: {item['value']:.2f}x "
                f"(target <= {item['target']}) {verdict}"
            )
        else:
            print(
                f"  peak memory per party: {item['value']:.2f}x input "
                f"(target < {item['target']}) {verdict}"
            )


# --- main ---------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int_list, default=[1000, 100_000, 1_000_000])
    parser.add_argument("--parties", type=int_list, default=[3, 5])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", type=Path, help="use and keep this workdir (logs, data)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if any(n < 2 for n in args.parties):
        parser.error("--parties: at least 2 parties")
    memory_length = MEMORY_LENGTH if MEMORY_LENGTH in args.lengths else max(args.lengths)

    # SIGTERM unwinds like Ctrl-C: every context manager stops its processes, the workdir goes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_before = os.getloadavg()
    workroot = args.keep or Path(tempfile.mkdtemp(prefix="mpc-bench-"))
    started = time.monotonic()
    rows: list[Row] = []
    reports: list[MemoryReport] = []
    try:
        for n in args.parties:
            got, memory = run_party_count(
                n, args.lengths, args.repeats, workroot / f"n{n}", memory_length
            )
            rows += got
            if memory is not None:
                reports.append(memory)
    except ResultMismatch as exc:
        log(f"WRONG RESULT: {exc}")
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(workroot, ignore_errors=True)
    elapsed = time.monotonic() - started
    verdicts = targets(rows, reports)

    if args.json:
        print(
            json.dumps(
                {
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "numpy": np.__version__,
                        "loadavg_1min_before": load_before[0],
                        "loadavg_1min_after": os.getloadavg()[0],
                    },
                    "repeats": args.repeats,
                    "results": [r.summary() for r in rows],
                    "memory": [
                        {
                            "n": m.n,
                            "length": m.length,
                            "input_bytes": m.input_bytes,
                            "method": m.method,
                            "max_increase_over_input": m.max_ratio(),
                            "max_vmhwm_kb": m.max_hwm_kb(),
                            "idle_rss_kb": m.idle_rss_kb,
                            "per_party_max": {
                                pid: asdict(s) for pid, s in m.per_party_max().items()
                            },
                        }
                        for m in reports
                    ],
                    "targets": verdicts,
                    "elapsed_seconds": elapsed,
                },
                indent=2,
            )
        )
        return 0

    print(
        f"secure vector sum vs plaintext numpy and raw gRPC (median of {args.repeats} runs; "
        f"{os.cpu_count()} CPUs; 1-min load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after)\n"
    )
    print_table(rows)
    print_cpu(rows)
    print_stages(rows, memory_length)
    print_memory(reports)
    print_targets(verdicts)
    print(f"\nall secure results within tolerance; total {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
