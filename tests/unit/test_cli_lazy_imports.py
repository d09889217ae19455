"""The CLI starts fast: ``mpc --help`` and ``mpc query mean`` do not import what they do not use.

Each case runs in a fresh interpreter and fails naming the modules that were loaded (issue 12:
"the CLI feels instant"; timings in the commit that added this test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# Never needed by a client command: the servers, the optional heavy libraries.
SERVER_AND_OPTIONAL = (
    "mpc.coordinator.service",
    "mpc.coordinator.jobs",
    "mpc.party",
    "mpc.transport.coordinator_server",
    "mpc.transport.party_server",
    "pandas",
    "scipy",
    "matplotlib",
    "duckdb",
    "pyarrow",
)
# Not needed to parse the command line (`mpc --help`).
CLIENT_STACK = (
    "numpy",
    "grpc",
    "google.protobuf",
    "cryptography",
    "importlib.metadata",
    "mpc.client",
    "mpc.coordinator",
    "mpc.dp",
    "mpc.ledger",
    "mpc.protocol",
    "mpc.stats",
    "mpc.transport",
)
# Not needed by the basic statistics (the analyses, training and the DP planner are).
ANALYSES_AND_TRAINING = (
    "importlib.metadata",
    "mpc.dp.mechanisms",
    "mpc.stats.analyses",
    "mpc.stats.privacy",
    "mpc.training",
)


def loaded(script: str, *args: str) -> tuple[set[str], str]:
    """Run ``script`` in a new interpreter; the modules it left loaded and its stdout."""
    code = textwrap.dedent(script) + textwrap.dedent("""
        import json, sys
        print("MODULES=" + json.dumps(sorted(sys.modules)))
        """)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout
    head, _, modules = out.rpartition("MODULES=")
    return set(json.loads(modules)), head


def offending(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules for f in forbidden if m == f or m.startswith(f + "."))


def test_help_parses_without_the_client_stack() -> None:
    modules, out = loaded("""
        import contextlib, io
        from mpc.cli import main
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as help:
            main(["--help"])
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            main(["query", "covariance", "--help"])  # the analyses' parser too
        print("query" in help.getvalue())
        """)
    assert out.strip() == "True"
    assert offending(modules, SERVER_AND_OPTIONAL + CLIENT_STACK) == []


def test_query_mean_loads_only_the_client(cert_dir: Path) -> None:
    """The whole command (parse, sign, follow the job, lay out and print the result) with the
    two network calls replaced by a canned job."""
    modules, out = loaded(
        """
        import sys
        from mpc.client import Client
        from mpc.proto.v1 import common_pb2, coordinator_pb2
        from mpc.transport.convert import floats_to_bytes
        import numpy as np

        def events(self, job_id):
            header = coordinator_pb2.ResultHeader(
                job_id=job_id, state=coordinator_pb2.JOB_STATE_SUCCEEDED, statistic="mean",
                dataset="health", labels=["age"], parties=["a", "b"], length=1, frac_bits=16,
                bounds=[common_pb2.ColumnBounds(column="age", lo=18, hi=100)],
            )
            yield coordinator_pb2.JobEvent(
                job_id=job_id, state=coordinator_pb2.JOB_STATE_SUCCEEDED, stage="done",
                progress=1.0, result=header, values=floats_to_bytes(np.array([53.25])),
            )

        Client._run = lambda self, query, on_event=None: self.follow("job-lazy", on_event)
        Client._events = events
        from mpc.cli import main
        code = main(["query", "mean", "--dataset", "health", "--column", "age",
                     "--bounds", "18:100", "--coordinator", "127.0.0.1:1",
                     "--tls-dir", sys.argv[1], "--json"])
        assert code == 0, code
        """,
        str(cert_dir),
    )
    assert json.loads(out)["values"] == {"age": 53.25}
    assert offending(modules, SERVER_AND_OPTIONAL + ANALYSES_AND_TRAINING) == []


def test_the_check_can_fail() -> None:
    modules, _ = loaded("import mpc.coordinator.service")
    assert "mpc.coordinator.service" in offending(modules, SERVER_AND_OPTIONAL)
