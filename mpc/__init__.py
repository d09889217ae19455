"""mpc: secure multi-party computation of sums, counts, means and linear-model gradients.

Import :class:`mpc.Client` for the Python API, :class:`mpc.LocalCluster` to run a whole
deployment on this machine from pandas DataFrames; run ``mpc --help`` for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpc.errors import (
    AccessDeniedError,
    ConfigError,
    InputDataError,
    JobFailedError,
    MpcError,
    PartyFailedError,
    PrivacyBudgetError,
    ProtocolError,
    QueryError,
    TransportError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mpc.client import Client, QueryResult
    from mpc.local import LocalCluster


def __getattr__(name: str) -> Any:
    # Lazy so that importing the pure modules (ring, sharing, dp) never loads gRPC.
    if name in ("Client", "QueryResult"):
        from mpc import client

        return getattr(client, name)
    if name == "LocalCluster":
        from mpc.local import LocalCluster

        return LocalCluster
    raise AttributeError(name)


__all__ = [
    "AccessDeniedError",
    "Client",
    "ConfigError",
    "InputDataError",
    "JobFailedError",
    "LocalCluster",
    "MpcError",
    "PartyFailedError",
    "PrivacyBudgetError",
    "ProtocolError",
    "QueryError",
    "QueryResult",
    "TransportError",
    "__version__",
]
