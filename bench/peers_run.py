"""Runners for bench/peers.py: the MPyC and Flower child processes, and their results.

Each peer at one length becomes a :class:`Cell`: the timed runs (after the warm-up) or why
there are none (skipped over the time limit, failed, not installed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from bench import raw_grpc
except ImportError:  # run as a script: bench/ itself is sys.path[0]
    import raw_grpc  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
PEERS = ("mpc", "MPyC", "Flower", "CrypTen")
# A peer's own precision: MPyC 16 fractional bits (n * 2^-17 rounding); Flower quantizes
# [-8, 8] to 2^22 levels with stochastic rounding (n steps of 16 / 2^22). mpc's results are
# checked by secure_sum against the result's own ``tolerance``.
TOLERANCE = {
    "MPyC": lambda n: n * 2.0**-17 + 1e-9,
    "Flower": lambda n: n * 16.0 / 2**22 + 1e-9,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Cell:
    """One peer at one length: sample times, or why there are none."""

    samples_ms: list[float] = field(default_factory=list)
    max_abs_error: float | None = None
    wrong: bool = False
    note: str = ""

    @property
    def ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    def summary(self) -> dict[str, object]:
        return {
            "ms": self.ms,
            "samples_ms": self.samples_ms,
            "max_abs_error": self.max_abs_error,
            "wrong": self.wrong,
            "note": self.note,
        }


def free_port_base(count: int) -> int:
    """A base port with ``count`` consecutive ports free right now (MPyC uses base + i)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count >= 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for offset in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise OSError("no free port range for MPyC")


def parse_runs(text: str) -> list[dict[str, float]]:
    runs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            runs.append(json.loads(line))
    return runs


def fill_cell(
    cell: Cell,
    runs: list[dict[str, float]],
    repeats: int,
    limit_s: float,
    tol: float,
    judge_warmup: bool = True,
) -> None:
    """Runs[0] is the warm-up; the rest are the timed repeats.

    ``judge_warmup=False`` leaves the warm-up out of the time limit (Flower's includes Ray's
    start-up).
    """
    if not runs:
        cell.note = cell.note or "no result"
        return
    cell.max_abs_error = max(float(r["max_abs_error"]) for r in runs)
    cell.wrong = not cell.max_abs_error <= tol
    judged = runs if judge_warmup else runs[1:]
    slowest = max((float(r["ms"]) for r in judged), default=0.0)
    if slowest > limit_s * 1e3:
        cell.note = f"skipped: one run took {slowest / 1e3:.3g} s > {limit_s:.3g} s"
        return
    cell.samples_ms = [float(r["ms"]) for r in runs[1 : repeats + 1]]
    if len(cell.samples_ms) < repeats:
        cell.note = f"only {len(cell.samples_ms)} of {repeats} runs finished"


def run_children(
    commands: list[list[str]], env: dict[str, str], timeout: float, cwd: Path
) -> list[tuple[int | None, str, str]]:
    """Start all, wait for all (killing every one at the timeout): (rc, stdout, stderr)."""
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=raw_grpc._die_with_parent,
        )
        for cmd in commands
    ]
    deadline = time.monotonic() + timeout
    out: list[tuple[int | None, str, str]] = []
    try:
        for proc in procs:
            try:
                stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
                out.append((proc.returncode, stdout, stderr))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                out.append((None, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return out


def too_slow(previous: tuple[int, Cell] | None, length: int, limit_s: float) -> str:
    if previous is None:
        return ""
    prev_length, cell = previous
    if cell.note.startswith("skipped"):
        return f"skipped: already over {limit_s:.3g} s at L={prev_length}"
    if cell.ms is None:
        return ""
    estimate = cell.ms * length / prev_length / 1e3
    if estimate > limit_s:
        return f"skipped: ~{estimate:.3g} s per run extrapolated > {limit_s:.3g} s"
    return ""


def run_mpyc(n: int, length: int, repeats: int, limit_s: float, workdir: Path) -> Cell:
    cell = Cell()
    base = free_port_base(n)
    env = dict(
        os.environ,
        PEERS_LENGTH=str(length),
        PEERS_REPEATS=str(repeats),
        PEERS_LIMIT_S=str(limit_s),
    )
    script = str(HERE / "peers_mpyc.py")
    commands = [
        [sys.executable, script, f"-M{n}", f"-I{i}", "-B", str(base), "--no-log"] for i in range(n)
    ]
    results = run_children(commands, env, limit_s * (repeats + 1) + 60, workdir)
    rc, stdout, stderr = results[0]
    if rc != 0:
        cell.note = f"party 0 failed (rc {rc}): {stderr.strip().splitlines()[-1:]}"
    fill_cell(cell, parse_runs(stdout), repeats, limit_s, TOLERANCE["MPyC"](n))
    return cell


def run_flower(
    python: str, n: int, length: int, repeats: int, limit_s: float, data_dir: Path, workdir: Path
) -> Cell:
    cell = Cell()
    out = workdir / f"flower-{length}.jsonl"
    out.unlink(missing_ok=True)
    env = dict(
        os.environ,
        PEERS_DATA_DIR=str(data_dir),
        PEERS_LENGTH=str(length),
        PEERS_PARTIES=str(n),
        PEERS_REPEATS=str(repeats),
        PEERS_LIMIT_S=str(limit_s),
        PEERS_OUT=str(out),
        RAY_DEDUP_LOGS="0",
    )
    env.pop("PYTHONPATH", None)
    command = [python, str(HERE / "peers_flower.py")]
    # Ray's start-up (~10 s) falls into the warm-up round, which is not counted.
    ((rc, _stdout, stderr),) = run_children([command], env, limit_s * (repeats + 1) + 120, workdir)
    runs = parse_runs(out.read_text()) if out.exists() else []
    if rc != 0 and len(runs) < repeats + 1:
        tail = [x for x in stderr.strip().splitlines() if x.strip()][-1:]
        cell.note = f"failed (rc {rc}): {tail}"
    fill_cell(cell, runs, repeats, limit_s, TOLERANCE["Flower"](n), judge_warmup=False)
    return cell


def flower_unavailable(python: str | None) -> str:
    if python is None:
        return "n/a (flwr needs protobuf<7, mpc protobuf 7: give --flower-python of its venv)"
    probe = subprocess.run(
        [python, "-c", "import flwr.simulation, ray"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"n/a (flwr[simulation] not importable by {python})"
    return ""


def mpyc_unavailable() -> str:
    if importlib.util.find_spec("mpyc") is None:
        return "n/a (not installed: .venv/bin/pip install -e '.[bench]')"
    return ""


def crypten_unavailable() -> str:
    if importlib.util.find_spec("crypten") is None:
        # `pip install --dry-run crypten` (0.4.1): it requires the deprecated `sklearn` PyPI
        # package, whose sdist refuses to build (use scikit-learn instead).
        return "n/a (does not install: crypten 0.4.1 requires the deprecated `sklearn` package)"
    return "n/a (installed, but no CrypTen runner is implemented)"
