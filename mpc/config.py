"""Party and coordinator configuration files (TOML), parsed into frozen value classes.

Relative paths in a config file are resolved against the file's own directory, so a config
folder can be moved or mounted anywhere.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc.config_datasets import (
    ACCESS_STATISTICS,
    DEFAULT_MAX_BINS,
    DEFAULT_MIN_PARTIES,
    SOURCES,
    SQL_SOURCES,
    BudgetConfig,
    ClientAccess,
    ColumnConfig,
    DatasetConfig,
    Participation,
    _budget,
    _number,
    _require,
    _resolve,
    parse_dataset,
)
from mpc.errors import ConfigError
from mpc.identity import TlsFiles, check_party_id


@dataclass(frozen=True)
class PartyConfig:
    party_id: str
    listen: str
    tls: TlsFiles
    datasets: tuple[DatasetConfig, ...]
    source: Path | None = None
    #: Privacy ledger and party state (SQLite): DP charges, answered DP job ids, pinned cohorts.
    ledger: Path | None = None
    #: Refuse distributed-noise jobs sized for fewer colluders; None: n - 1 for n participants
    #: (no honest majority assumed: this party's own noise alone meets the target).
    min_colluders: int | None = None
    #: The one coordinator identity (certificate name) this party accepts calls from.
    coordinator: str = "coordinator"
    #: Refuse jobs that do not carry the client's own signed query.
    require_signed_queries: bool = True
    #: Append-only, hash-chained audit log of every job this party saw; None: not kept
    #: (a config file gets ``<name>.audit.jsonl`` beside it by default).
    audit_log: Path | None = None

    def dataset(self, name: str) -> DatasetConfig | None:
        return next((d for d in self.datasets if d.name == name), None)


@dataclass(frozen=True)
class PartyEndpoint:
    party_id: str
    address: str


@dataclass(frozen=True)
class CoordinatorConfig:
    listen: str
    tls: TlsFiles
    database: Path
    parties: tuple[PartyEndpoint, ...]
    job_timeout_seconds: float = 60.0
    rpc_timeout_seconds: float = 10.0
    max_concurrent_jobs: int = 4
    budgets: dict[str, BudgetConfig] = field(default_factory=dict)
    colluders: int | None = None  # t for distributed noise; None: n - 1 (no honest majority)
    #: Exact histograms: cells with 0 < count < this are suppressed (DataSHIELD's nfilter.tab).
    min_cell_count: int = 3
    #: Jobs one client may have queued or running at once; more are refused with a clear error.
    max_queued_per_client: int = 50
    source: Path | None = field(default=None, compare=False)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc


def _tls(table: dict[str, Any], base: Path, where: str) -> TlsFiles:
    tls = _require(table, "tls", dict, where)
    crl = tls.get("crl")
    if crl is not None and not isinstance(crl, str):
        raise ConfigError(f"{where} [tls]: 'crl' must be a str")
    return TlsFiles(
        ca=_resolve(base, _require(tls, "ca", str, f"{where} [tls]")),
        cert=_resolve(base, _require(tls, "cert", str, f"{where} [tls]")),
        key=_resolve(base, _require(tls, "key", str, f"{where} [tls]")),
        crl=_resolve(base, crl) if crl is not None else None,
    )


def _check_listen(address: str, where: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: listen/address must look like HOST:PORT, got {address!r}")
    return address


def load_party_config(path: Path) -> PartyConfig:
    where = str(path)
    data = _read_toml(path)
    base = path.parent
    party_id = check_party_id(_require(data, "id", str, where))
    datasets = [
        parse_dataset(name, table, base, party_id, where)
        for name, table in _require(data, "datasets", dict, where).items()
    ]
    ledger = _resolve(base, data["ledger"]) if isinstance(data.get("ledger"), str) else None
    # The state database is needed for DP charges and for pinning a cohort at first use.
    needs_state = any(
        d.budget
        or (d.mode == "cohort" and d.cohort is None)
        or any(a.budget for a in d.access or ())
        for d in datasets
    )
    default_ledger = path.with_name(f"{path.stem}.ledger.sqlite")
    if ledger is None and (needs_state or default_ledger.exists()):
        ledger = default_ledger
    min_colluders = data.get("min_colluders")
    if min_colluders is not None and (
        isinstance(min_colluders, bool) or not isinstance(min_colluders, int) or min_colluders < 0
    ):
        raise ConfigError(f"{where}: min_colluders must be a non-negative integer")
    coordinator = data.get("coordinator", "coordinator")
    if not isinstance(coordinator, str) or not coordinator:
        raise ConfigError(f"{where}: coordinator must be the coordinator's certificate name")
    signed = data.get("require_signed_queries", True)
    if not isinstance(signed, bool):
        raise ConfigError(f"{where}: require_signed_queries must be true or false")
    audit_log = data.get("audit_log")
    if audit_log is not None and not isinstance(audit_log, str):
        raise ConfigError(f"{where}: audit_log must be a path")
    return PartyConfig(
        require_signed_queries=signed,
        coordinator=coordinator,
        audit_log=(
            _resolve(base, audit_log)
            if audit_log is not None
            else path.with_name(f"{path.stem}.audit.jsonl")
        ),
        party_id=party_id,
        listen=_check_listen(_require(data, "listen", str, where), where),
        tls=_tls(data, base, where),
        datasets=tuple(datasets),
        source=path,
        ledger=ledger,
        min_colluders=min_colluders,
    )


def load_coordinator_config(path: Path) -> CoordinatorConfig:
    where = str(path)
    data = _read_toml(path)
    base = path.parent
    parties: list[PartyEndpoint] = []
    for index, entry in enumerate(_require(data, "parties", list, where)):
        pwhere = f"{where} parties[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{pwhere}: must be a table with id and address")
        parties.append(
            PartyEndpoint(
                party_id=check_party_id(_require(entry, "id", str, pwhere)),
                address=_check_listen(_require(entry, "address", str, pwhere), pwhere),
            )
        )
    ids = [p.party_id for p in parties]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: a party id is listed twice")
    if len(parties) < 2:
        raise ConfigError(f"{where}: list at least two parties")
    timeout = _number(data, "job_timeout_seconds", where) or 60.0
    rpc_timeout = _number(data, "rpc_timeout_seconds", where) or 10.0
    concurrent = data.get("max_concurrent_jobs", 4)
    if isinstance(concurrent, bool) or not isinstance(concurrent, int) or concurrent < 1:
        raise ConfigError(f"{where}: max_concurrent_jobs must be a positive integer")
    if timeout <= 0 or rpc_timeout <= 0:
        raise ConfigError(f"{where}: timeouts must be positive")
    budgets = {
        name: _budget(table, f"{where} [budgets.{name}]", party=False)
        for name, table in (data.get("budgets") or {}).items()
    }
    colluders = data.get("colluders")
    if colluders is not None and (
        isinstance(colluders, bool) or not isinstance(colluders, int) or colluders < 0
    ):
        raise ConfigError(f"{where}: colluders must be a non-negative integer")
    min_cell_count = data.get("min_cell_count", 3)
    if (
        isinstance(min_cell_count, bool)
        or not isinstance(min_cell_count, int)
        or min_cell_count < 0
    ):
        raise ConfigError(f"{where}: min_cell_count must be a non-negative integer (0: off)")
    queued = data.get("max_queued_per_client", 50)
    if isinstance(queued, bool) or not isinstance(queued, int) or queued < 1:
        raise ConfigError(f"{where}: max_queued_per_client must be a positive integer")
    return CoordinatorConfig(
        max_queued_per_client=queued,
        min_cell_count=min_cell_count,
        listen=_check_listen(_require(data, "listen", str, where), where),
        tls=_tls(data, base, where),
        database=_resolve(base, _require(data, "database", str, where)),
        parties=tuple(parties),
        job_timeout_seconds=timeout,
        rpc_timeout_seconds=rpc_timeout,
        max_concurrent_jobs=concurrent,
        budgets=budgets,
        colluders=colluders,
        source=path,
    )


__all__ = [
    "ACCESS_STATISTICS",
    "DEFAULT_MAX_BINS",
    "DEFAULT_MIN_PARTIES",
    "SOURCES",
    "SQL_SOURCES",
    "BudgetConfig",
    "ClientAccess",
    "ColumnConfig",
    "CoordinatorConfig",
    "DatasetConfig",
    "Participation",
    "PartyConfig",
    "PartyEndpoint",
    "TlsFiles",
    "load_coordinator_config",
    "load_party_config",
]
