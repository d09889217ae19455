"""Flower SecAgg+ for bench/peers.py: one secure aggregation round per repeat, in simulation.

    PEERS_DATA_DIR=DIR PEERS_LENGTH=1000 PEERS_PARTIES=3 PEERS_REPEATS=5 PEERS_OUT=FILE \\
        FLOWER_PYTHON bench/peers_flower.py

Runs in its own interpreter (``--flower-python``, a separate virtualenv: flwr pins
``protobuf < 7`` and mpc's generated code needs protobuf 7, so the two cannot share one), so it
imports nothing from mpc. ``flwr.simulation.run_simulation`` with the Ray backend runs one
ServerApp and ``PEERS_PARTIES`` virtual SuperNodes in this process tree, on one machine, with no
network access. Client *i* holds ``DIR/party-i-v<L>.npy`` (the vectors of the mpc benchmark)
and its ``fit`` returns that vector with weight 1, through ``secaggplus_mod``.

The ServerApp runs Flower's ``DefaultWorkflow`` with ``SecAggPlusWorkflow(num_shares=n,
reconstruction_threshold=n-1, max_weight=1)`` (defaults otherwise: clipping range 8,
quantization range 2^22, modulus 2^32; ``max_weight=1`` because every weight is 1 -- the default
1000 would scale the vectors down 1000x before quantization) as the fit workflow and
``FedAvg(fraction_evaluate=0)``, for ``repeats + 1`` rounds (round 1 is a warm-up). What is
timed, per round, is exactly the SecAgg+ fit workflow call (its four stages: setup, share keys,
collect masked vectors, unmask and aggregate), from the server side: every stage is one
``grid.send_and_receive`` to the clients. The current model sent to the clients is reset to a
one-element placeholder before each round, so the downlink does not carry an L-vector (mpc's sum
has no downlink either). SecAgg+ releases the weighted mean; times n is the sum. Each round
appends one JSON line ``{"run": k, "ms": ..., "max_abs_error": ...}`` (the error of the sum
against numpy's sum of the same files) to ``PEERS_OUT``. A timed round slower than
``PEERS_LIMIT_S`` ends the loop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.simulation import run_simulation

DATA_DIR = Path(os.environ["PEERS_DATA_DIR"])
LENGTH = int(os.environ["PEERS_LENGTH"])
PARTIES = int(os.environ.get("PEERS_PARTIES", "3"))
REPEATS = int(os.environ.get("PEERS_REPEATS", "5"))
LIMIT_S = float(os.environ.get("PEERS_LIMIT_S", "60"))
OUT = Path(os.environ["PEERS_OUT"])


def vector_path(index: int) -> Path:
    return DATA_DIR / f"party-{index}-v{LENGTH}.npy"


class VectorClient(NumPyClient):  # type: ignore[misc]
    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def fit(self, parameters: Any, config: Any) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        return [self.vector], 1, {}


def client_fn(context: Context) -> Any:
    index = int(context.node_config["partition-id"])
    return VectorClient(np.load(vector_path(index))).to_client()


class TimedFit:
    """The SecAgg+ fit workflow with a timer around it and a check of its result."""

    def __init__(self, reference: np.ndarray) -> None:
        self.inner = SecAggPlusWorkflow(
            num_shares=PARTIES, reconstruction_threshold=PARTIES - 1, max_weight=1.0
        )
        self.reference = reference
        self.run = 0
        self.stop = False

    def __call__(self, grid: Any, context: LegacyContext) -> None:
        if self.stop:
            return
        placeholder = ndarrays_to_parameters([np.zeros(1)])
        context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
            placeholder, True
        )
        start = time.perf_counter()
        self.inner(grid, context)
        ms = (time.perf_counter() - start) * 1e3
        record = context.state.array_records[MAIN_PARAMS_RECORD]
        mean = parameters_to_ndarrays(compat.arrayrecord_to_parameters(record, keep_input=True))
        total = np.asarray(mean[0], dtype=np.float64) * PARTIES
        if total.shape == self.reference.shape:
            error = float(np.max(np.abs(total - self.reference)))
        else:
            error = float("inf")
        with OUT.open("a") as handle:
            handle.write(json.dumps({"run": self.run, "ms": ms, "max_abs_error": error}) + "\n")
        self.run += 1
        if ms > LIMIT_S * 1e3 and self.run > 1:  # the warm-up includes Ray's start-up
            self.stop = True


def main() -> None:
    reference = np.sum([np.load(vector_path(i)) for i in range(PARTIES)], axis=0)
    server_app = ServerApp()

    @server_app.main()  # type: ignore[misc]
    def _main(grid: Any, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=PARTIES,
            min_available_clients=PARTIES,
            initial_parameters=ndarrays_to_parameters([np.zeros(1)]),
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=REPEATS + 1), strategy=strategy
        )
        DefaultWorkflow(fit_workflow=TimedFit(reference))(grid, legacy)

    client_app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=PARTIES,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "include_dashboard": False},
        },
    )


if __name__ == "__main__":
    main()
