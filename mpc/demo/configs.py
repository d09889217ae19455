"""Config files (TOML text) for a local deployment: one per party and the coordinator's.

Used by :class:`mpc.demo.cluster.LocalCluster`, ``mpc compose`` and the tests. Values are
written as JSON strings (valid TOML basic strings), so any path or name is quoted safely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DatasetFile:
    """A dataset a party serves: a CSV table or a .npy vector."""

    path: Path
    max_rows: int
    kind: str = "table"
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    budget: tuple[float, float] | None = None  # this party's (epsilon, delta) for the dataset
    allow_central: bool = False
    #: Participation policy (see the README's config reference): "cohort" or "dp-only";
    #: None leaves the party's default (dp-only with a budget, else cohort).
    participation: str | None = None
    #: The cohort to declare; None: every party of the cluster holding this dataset (cohort
    #: mode), so a cluster never depends on pinning at first use.
    cohort: tuple[str, ...] | None = None
    min_parties: int | None = None
    max_bins: int | None = None
    #: Access list: client name -> {"statistics": [...], "exact": bool, "budget": (eps, delta)};
    #: None leaves the dataset open to every client.
    access: Mapping[str, Mapping[str, object]] | None = None
    #: Empty CSV cells: "error" (the column is unavailable) or "drop" (jobs drop the rows);
    #: None leaves the party's default ("error").
    missing: str | None = None
    #: Declared (public) categories of text columns: column -> category names.
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Allow exact (non-DP) filtered and grouped releases; None leaves the default (off).
    exact_filters: bool | None = None
    #: The source ("csv", "npy", "parquet", "duckdb", "postgres"); None: from ``kind``.
    source: str | None = None
    #: SQL sources: ``table`` or ``sql``, and ``dsn`` (postgres), written as given.
    sql_options: Mapping[str, str] = field(default_factory=dict)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def party_config_text(
    party_id: str,
    listen: str,
    tls_dir: Path,
    datasets: Mapping[str, DatasetFile],
    *,
    cohorts: Mapping[str, tuple[str, ...]] | None = None,
    min_colluders: int | None = None,
) -> str:
    """A party's config.toml. ``cohorts`` maps a dataset to the cohort to declare when its
    :class:`DatasetFile` names none (and its participation is not dp-only)."""
    lines = [
        f"id = {_toml_str(party_id)}",
        f"listen = {_toml_str(listen)}",
    ]
    if min_colluders is not None:
        lines.append(f"min_colluders = {int(min_colluders)}")
    lines += [
        "",
        "[tls]",
        f"ca = {_toml_str(str(tls_dir / 'ca.pem'))}",
        f"cert = {_toml_str(str(tls_dir / f'{party_id}.pem'))}",
        f"key = {_toml_str(str(tls_dir / f'{party_id}.key'))}",
    ]
    for name, dataset in datasets.items():
        lines += [
            "",
            f"[datasets.{_toml_str(name)}]",
            f"path = {_toml_str(str(dataset.path))}",
            f"kind = {_toml_str(dataset.kind)}",
            f"max_rows = {dataset.max_rows}",
        ]
        if dataset.source is not None:
            lines.append(f"source = {_toml_str(dataset.source)}")
        for key, value in dataset.sql_options.items():
            lines.append(f"{key} = {_toml_str(value)}")
        if dataset.exact_filters is not None:
            lines.append(f"exact_filters = {'true' if dataset.exact_filters else 'false'}")
        if dataset.participation is not None:
            lines.append(f"participation = {_toml_str(dataset.participation)}")
        if dataset.missing is not None:
            lines.append(f"missing = {_toml_str(dataset.missing)}")
        cohort = dataset.cohort
        dp_only = dataset.participation == "dp-only" or (
            dataset.participation is None and dataset.budget is not None
        )
        if cohort is None and not dp_only and cohorts is not None:
            cohort = cohorts.get(name)
        if cohort is not None:
            lines.append(f"cohort = {_toml_list(cohort)}")
        if dataset.min_parties is not None:
            lines.append(f"min_parties = {int(dataset.min_parties)}")
        if dataset.max_bins is not None:
            lines.append(f"max_bins = {int(dataset.max_bins)}")
        if dataset.budget is not None:
            epsilon, delta = dataset.budget
            lines += [
                "",
                f"[datasets.{_toml_str(name)}.budget]",
                f"epsilon = {float(epsilon)!r}",
                f"delta = {float(delta)!r}",
                f"allow_central = {'true' if dataset.allow_central else 'false'}",
            ]
        for client, entry in (dataset.access or {}).items():
            lines += ["", f"[datasets.{_toml_str(name)}.access.{_toml_str(client)}]"]
            statistics = entry.get("statistics")
            if isinstance(statistics, (list, tuple)):
                lines.append(f"statistics = {_toml_list([str(x) for x in statistics])}")
            lines.append(f"exact = {'true' if entry.get('exact') else 'false'}")
            budget = entry.get("budget")
            if isinstance(budget, tuple):
                lines += [
                    f"[datasets.{_toml_str(name)}.access.{_toml_str(client)}.budget]",
                    f"epsilon = {float(budget[0])!r}",
                    f"delta = {float(budget[1])!r}",
                ]
        for column in [
            *dataset.bounds,
            *(c for c in dataset.categories if c not in dataset.bounds),
        ]:
            lines += ["", f"[datasets.{_toml_str(name)}.columns.{_toml_str(column)}]"]
            if column in dataset.bounds:
                lo, hi = dataset.bounds[column]
                lines += [f"lo = {float(lo)!r}", f"hi = {float(hi)!r}"]
            if column in dataset.categories:
                lines.append(f"categories = {_toml_list(list(dataset.categories[column]))}")
    return "\n".join(lines) + "\n"


def coordinator_config_text(
    listen: str,
    tls_dir: Path,
    database: Path,
    parties: Mapping[str, str],
    job_timeout: float = 60.0,
    rpc_timeout: float = 10.0,
    budgets: Mapping[str, tuple[float, float]] | None = None,
    min_cell_count: int | None = None,
) -> str:
    lines = [
        f"listen = {_toml_str(listen)}",
        f"database = {_toml_str(str(database))}",
        f"job_timeout_seconds = {float(job_timeout)!r}",
        f"rpc_timeout_seconds = {float(rpc_timeout)!r}",
        *([] if min_cell_count is None else [f"min_cell_count = {int(min_cell_count)}"]),
        "",
        "[tls]",
        f"ca = {_toml_str(str(tls_dir / 'ca.pem'))}",
        f"cert = {_toml_str(str(tls_dir / 'coordinator.pem'))}",
        f"key = {_toml_str(str(tls_dir / 'coordinator.key'))}",
    ]
    for name, (epsilon, delta) in (budgets or {}).items():
        lines += [
            "",
            f"[budgets.{_toml_str(name)}]",
            f"epsilon = {float(epsilon)!r}",
            f"delta = {float(delta)!r}",
        ]
    for party_id, address in parties.items():
        lines += [
            "",
            "[[parties]]",
            f"id = {_toml_str(party_id)}",
            f"address = {_toml_str(address)}",
        ]
    return "\n".join(lines) + "\n"
