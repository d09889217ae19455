"""Start a coordinator and N parties as separate OS processes on 127.0.0.1.

Used by ``mpc demo``, the integration tests, the benchmarks and :class:`mpc.LocalCluster`.
Every server binds port 0 and
reports the port it got through a ready file, so nothing races for ports. :meth:`stop` ends
every process it started (SIGTERM, then SIGKILL), and on Linux each child also dies with its
parent (``PR_SET_PDEATHSIG``), so no process is left behind even if the launcher is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mpc.client import Client
from mpc.demo.configs import (
    DatasetFile,
    coordinator_config_text,
    party_config_text,
)
from mpc.errors import ConfigError
from mpc.identity import init_certificates

__all__ = [
    "DatasetFile",
    "LocalCluster",
    "coordinator_config_text",
    "party_config_text",
]


class LocalCluster:
    """A coordinator and parties running as local processes, for one workdir."""

    def __init__(
        self,
        workdir: Path,
        datasets: Mapping[str, Mapping[str, DatasetFile]],
        *,
        job_timeout: float = 60.0,
        rpc_timeout: float = 10.0,
        start_timeout: float = 60.0,
        log_level: str = "INFO",
        budgets: Mapping[str, tuple[float, float]] | None = None,
        min_colluders: int | None = None,
        min_cell_count: int | None = None,
        clients: tuple[str, ...] = ("client",),
    ) -> None:
        self.budgets = dict(budgets or {})
        self.min_colluders = min_colluders
        self.clients = clients  # client certificates to make (with the CA, on first start)
        self.min_cell_count = min_cell_count
        self.workdir = workdir
        self.datasets = datasets
        self.tls_dir = workdir / "certs"
        self.log_dir = workdir / "logs"
        self.job_timeout = job_timeout
        self.rpc_timeout = rpc_timeout
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.addresses: dict[str, str] = {}
        self.coordinator_address = ""

    @property
    def party_ids(self) -> list[str]:
        return sorted(self.datasets)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        if not (self.tls_dir / "ca.pem").exists():
            init_certificates(self.tls_dir, self.party_ids, clients=self.clients)
        for party_id in self.party_ids:
            self.start_party(party_id)
        for party_id in self.party_ids:
            self.addresses[party_id] = self._wait_ready(party_id)
        self.start_coordinator()

    def cohorts(self) -> dict[str, tuple[str, ...]]:
        """Per dataset name: every party of this cluster that holds it (the default cohort)."""
        names = {name for held in self.datasets.values() for name in held}
        return {
            name: tuple(pid for pid in self.party_ids if name in self.datasets[pid])
            for name in sorted(names)
        }

    def party_config_path(self, party_id: str) -> Path:
        return self.workdir / f"party-{party_id}.toml"

    def start_party(self, party_id: str, listen: str = "127.0.0.1:0") -> None:
        config = self.party_config_path(party_id)
        if listen == "127.0.0.1:0" and party_id in self.addresses:
            listen = self.addresses[party_id]  # a restart keeps its address
        config.write_text(
            party_config_text(
                party_id,
                listen,
                self.tls_dir,
                self.datasets[party_id],
                cohorts=self.cohorts(),
                min_colluders=self.min_colluders,
            )
        )
        self._spawn(party_id, ["party", "serve", "--config", str(config)])

    def start_coordinator(self) -> None:
        config = self.workdir / "coordinator.toml"
        config.write_text(
            coordinator_config_text(
                "127.0.0.1:0",
                self.tls_dir,
                self.workdir / "coordinator.sqlite",
                self.addresses,
                self.job_timeout,
                self.rpc_timeout,
                self.budgets,
                self.min_cell_count,
            )
        )
        self._spawn("coordinator", ["coordinator", "serve", "--config", str(config)])
        self.coordinator_address = self._wait_ready("coordinator")

    def _spawn(self, name: str, args: list[str]) -> None:
        ready = self.workdir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        # The child arms its own death signal (mpc/__main__.py): no preexec_fn, so no Python
        # runs between fork and exec in this process, which may hold live gRPC channels.
        env = dict(os.environ, PYTHONUNBUFFERED="1", MPC_PARENT_PID=str(os.getpid()))
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mpc",
                "--log-level",
                self.log_level,
                *args,
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()

    def _wait_ready(self, name: str) -> str:
        ready = self.workdir / f"{name}.ready"
        process = self.processes[name]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if ready.exists():
                return str(json.loads(ready.read_text())["address"])
            if process.poll() is not None:
                raise ConfigError(
                    f"{name} exited with status {process.returncode} while starting:\n"
                    + self.log_tail(name)
                )
            time.sleep(0.02)
        raise ConfigError(f"{name} did not start within {self.start_timeout:.0f}s")

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, timeout: float = 120.0) -> Client:
        return Client(self.coordinator_address, tls_dir=self.tls_dir, timeout=timeout)

    def signal(self, name: str, signum: int) -> None:
        self.processes[name].send_signal(signum)

    def stop_process(self, name: str, timeout: float = 5.0) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            process.terminate()
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)
