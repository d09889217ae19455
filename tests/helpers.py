"""Helpers shared by tests (importable as ``tests.helpers``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mpc.config import BudgetConfig, ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.identity import Identity, load_identity
from mpc.party.runtime import PartyRuntime

PARTIES = ["a", "b", "c", "d", "e"]


def identity(cert_dir: Path, name: str) -> Identity:
    return load_identity(cert_dir / "ca.pem", cert_dir / f"{name}.pem", cert_dir / f"{name}.key")


def party_runtimes(
    cert_dir: Path,
    tmp_path: Path,
    parts: Sequence[np.ndarray],
    names: Sequence[str],
    bounds: Sequence[tuple[float, float]],
    *,
    dataset: str = "d",
    max_rows: int = 1000,
    budget: BudgetConfig | None = None,
) -> dict[str, PartyRuntime]:
    """In-process parties a, b, ... each holding one part of a table as CSV dataset
    ``dataset``: a cohort of all of them, or dp-only with its own ledger when ``budget`` is
    given. Unsigned jobs are accepted: these tests drive a JobRunner without a client."""
    ids = "abcde"[: len(parts)]
    runtimes = {}
    for pid, part in zip(ids, parts, strict=True):
        path = tmp_path / f"{pid}.csv"
        np.savetxt(path, part, delimiter=",", header=",".join(names), comments="", fmt="%.17g")
        config = PartyConfig(
            require_signed_queries=False,
            party_id=pid,
            listen="127.0.0.1:0",
            tls=TlsFiles.from_dir(cert_dir, pid),
            datasets=(
                DatasetConfig(
                    dataset,
                    path,
                    max_rows,
                    columns=tuple(
                        ColumnConfig(n, lo, hi) for n, (lo, hi) in zip(names, bounds, strict=True)
                    ),
                    budget=budget,
                    cohort=None if budget else tuple(ids),
                ),
            ),
            ledger=tmp_path / f"{pid}.ledger.sqlite" if budget else None,
        )
        runtimes[pid] = PartyRuntime(config, identity(cert_dir, pid))
    return runtimes
