"""`mpc train` defaults with real processes: automatic step, --frac-bits, warnings in output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import ClusterFactory

pytestmark = pytest.mark.integration


def test_cli_train_defaults_use_a_safe_step_and_frac_bits_is_honoured(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster(n_parties=3, rows=60)
    common = ["--coordinator", cluster.coordinator_address, "--tls-dir", str(cluster.tls_dir)]
    base = [sys.executable, "-m", "mpc.cli", "train", "linear", "--dataset", "people",
            "--features", "age,income", "--label", "score", *common]  # fmt: skip
    # No --lr: the client signs lr 0 and the coordinator picks a step below 2 / curvature.
    run = subprocess.run(
        [*base, "--frac-bits", "12", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    model = json.loads(run.stdout)
    assert model["hyperparameters"]["lr"] == 0.0
    assert 0 < model["hyperparameters"]["step"] <= 1.0
    assert model["frac_bits"] == 12 and model["warnings"] == []
    losses = [c["loss"] for c in model["curve"]]
    assert losses[-1] < losses[0]
    # An explicit step far beyond 2 / curvature: a clear error and a non-zero exit.
    run = subprocess.run(
        [*base, "--lr", "50"], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode != 0
    assert "training diverged" in run.stderr and "--lr" in run.stderr
