"""The dataset part of a party config: where a dataset's rows come from, its public columns
and the party's policy for it (``[datasets.NAME]`` tables), and the value parsers shared with
:mod:`mpc.config`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc.dp.accountant import Budget
from mpc.errors import ConfigError
from mpc.identity import check_party_id


@dataclass(frozen=True)
class ColumnConfig:
    name: str
    lo: float | None = None
    hi: float | None = None
    description: str = ""
    #: A categorical column: its publicly declared categories (text values); empty: numeric.
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class BudgetConfig:
    """A privacy budget in (epsilon, delta); enforced by whoever holds the ledger."""

    epsilon: float
    delta: float
    allow_central: bool = False  # parties: also accept central noise (coordinator sees sums)

    def budget(self) -> Budget:
        return Budget.from_epsilon_delta(self.epsilon, self.delta)


class Participation:
    """Participation modes of a dataset (the party's defence against differencing).

    ``cohort``: exact releases are allowed, but every job on the dataset, DP or not, has
    exactly the dataset's cohort as participants, so no two releases differ by a party.
    ``dp-only``: every release is noised and charged to this party's ledger; any subset of
    at least ``min_parties`` parties may take part.
    """

    COHORT = "cohort"
    DP_ONLY = "dp-only"


#: Names a client access entry may list in ``statistics`` (a statistic, or "train").
ACCESS_STATISTICS = ("sum", "count", "mean", "variance", "histogram", "vector_sum", "train")


@dataclass(frozen=True)
class ClientAccess:
    """What one client identity may ask of one dataset (the data owner's decision)."""

    client: str
    statistics: tuple[str, ...] | None = None  # None: every statistic
    exact: bool = False  # may this client get exact (non-DP) results?
    budget: BudgetConfig | None = None  # this client's own budget on the dataset


#: Default cap on histogram bins per dataset (fine enough for plots and quantiles, far too
#: coarse to locate a single row).
DEFAULT_MAX_BINS = 1024
DEFAULT_MIN_PARTIES = 2


#: Where a dataset's rows come from (``source``); the first two are files read whole.
SOURCES = ("csv", "npy", "parquet", "duckdb", "postgres")
#: Sources whose local statistics are pushed down into a SQL engine.
SQL_SOURCES = ("parquet", "duckdb", "postgres")


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    #: The CSV/.npy/Parquet file (Parquet: or a glob), the .duckdb file; None: an in-memory
    #: DuckDB (``sql`` reads local files) or PostgreSQL.
    path: Path | None
    max_rows: int
    kind: str = "table"  # "table" (CSV) or "vector" (.npy, one float64 vector)
    columns: tuple[ColumnConfig, ...] = ()
    description: str = ""
    budget: BudgetConfig | None = None  # set: only DP jobs, charged to this party's ledger
    #: "cohort" or "dp-only"; None: dp-only when the dataset has a budget, else cohort.
    participation: str | None = None
    #: Cohort mode: the exact participant set of every job; None: pinned at first use.
    cohort: tuple[str, ...] | None = None
    min_parties: int = DEFAULT_MIN_PARTIES
    max_bins: int = DEFAULT_MAX_BINS
    #: Which clients may query the dataset and how; None: any client of the consortium CA
    #: may run anything the participation policy allows.
    access: tuple[ClientAccess, ...] | None = None
    #: Empty CSV cells: "error" makes the column unavailable; "drop" keeps it, and a job
    #: using columns C drops (locally) every row with an empty cell in C.
    missing: str = "error"
    #: "csv" (kind table) or "npy" (kind vector), "parquet", "duckdb" or "postgres"; "":
    #: the kind's file format.
    source: str = ""
    #: duckdb/postgres: the table (``name`` or ``schema.name``) or the operator's SELECT.
    table: str | None = None
    sql: str | None = None
    #: postgres: a libpq connection string, or the environment variable holding one.
    dsn: str | None = None
    dsn_env: str | None = None
    #: Policy: allow exact (non-DP) releases filtered by ``where`` or split by ``group_by``.
    exact_filters: bool = False
    #: SQL sources: the longest one statement may run.
    timeout_seconds: float = 300.0

    @property
    def engine(self) -> str:
        """The effective source: ``source``, else the kind's file format."""
        return self.source or ("npy" if self.kind == "vector" else "csv")

    def column(self, name: str) -> ColumnConfig | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def mode(self) -> str:
        if self.participation is not None:
            return self.participation
        return Participation.DP_ONLY if self.budget is not None else Participation.COHORT


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing required key {key!r}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: {key!r} must be a {kind.__name__}")
    return value


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _number(table: dict[str, Any], key: str, where: str) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key!r} must be a finite number")
    return float(value)


def _budget(table: object, where: str, *, party: bool) -> BudgetConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with epsilon and delta")
    epsilon = _number(table, "epsilon", where)
    delta = _number(table, "delta", where)
    if epsilon is None or epsilon <= 0:
        raise ConfigError(f"{where}: epsilon must be a positive number")
    if delta is None or not 0 < delta < 1:
        raise ConfigError(f"{where}: delta must be in (0, 1)")
    allow_central = table.get("allow_central", False)
    if not isinstance(allow_central, bool) or (allow_central and not party):
        raise ConfigError(f"{where}: allow_central must be true or false (parties only)")
    return BudgetConfig(epsilon, delta, allow_central)


def _participation(
    table: dict[str, Any], party_id: str, budget: BudgetConfig | None, where: str
) -> dict[str, Any]:
    """The participation policy keys of one dataset table (see :class:`Participation`)."""
    mode = table.get("participation")
    if mode is not None and mode not in (Participation.COHORT, Participation.DP_ONLY):
        raise ConfigError(f"{where}: participation must be 'cohort' or 'dp-only'")
    effective = mode or (Participation.DP_ONLY if budget is not None else Participation.COHORT)
    if effective == Participation.DP_ONLY and budget is None:
        raise ConfigError(
            f"{where}: participation 'dp-only' needs a [budget]: every release is charged to it"
        )
    out: dict[str, Any] = {"participation": mode}
    for key, default, least in (("min_parties", DEFAULT_MIN_PARTIES, 2), ("max_bins", None, 1)):
        value = table.get(key, default)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{where}: {key} must be an integer of at least {least}")
        out[key] = value
    cohort = table.get("cohort")
    if cohort is not None:
        if effective != Participation.COHORT:
            raise ConfigError(f"{where}: a cohort is for participation 'cohort' only")
        if not isinstance(cohort, list) or not all(isinstance(p, str) for p in cohort):
            raise ConfigError(f"{where}: cohort must be a list of party ids")
        members = tuple(sorted({check_party_id(p) for p in cohort}))
        if len(members) != len(cohort):
            raise ConfigError(f"{where}: cohort lists a party twice")
        if party_id not in members:
            raise ConfigError(f"{where}: cohort must include this party ({party_id!r})")
        if len(members) < out.get("min_parties", DEFAULT_MIN_PARTIES):
            raise ConfigError(f"{where}: cohort has fewer parties than min_parties")
        out["cohort"] = members
    return out


def _access(table: object, where: str) -> tuple[ClientAccess, ...]:
    """``[datasets.NAME.access.CLIENT]`` tables: statistics, exact, budget."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of client names")
    entries = []
    for client, entry in table.items():
        cwhere = f"{where}.{client}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{cwhere}: must be a table (statistics, exact, budget)")
        unknown = set(entry) - {"statistics", "exact", "budget"}
        if unknown:
            raise ConfigError(f"{cwhere}: unknown key(s) {sorted(unknown)}")
        statistics = entry.get("statistics")
        if statistics is not None:
            if not isinstance(statistics, list) or not all(
                isinstance(x, str) and x in ACCESS_STATISTICS for x in statistics
            ):
                raise ConfigError(
                    f"{cwhere}: statistics must be a list of {', '.join(ACCESS_STATISTICS)}"
                )
            statistics = tuple(statistics)
        exact = entry.get("exact", False)
        if not isinstance(exact, bool):
            raise ConfigError(f"{cwhere}: exact must be true or false")
        budget = (
            _budget(entry["budget"], f"{cwhere}.budget", party=False) if "budget" in entry else None
        )
        entries.append(ClientAccess(str(client), statistics, exact, budget))
    return tuple(entries)


def _categories(spec: dict[str, Any], where: str) -> tuple[str, ...]:
    """A column's declared ``categories``: distinct, non-empty strings (public)."""
    value = spec.get("categories", [])
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ConfigError(f"{where}: categories must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a category is listed twice")
    return tuple(value)


def _source(table: dict[str, Any], base: Path, kind: str, where: str) -> dict[str, Any]:
    """The keys saying where a dataset's rows come from (see :data:`SOURCES`)."""
    default = "npy" if kind == "vector" else "csv"
    source = table.get("source", default)
    if source not in SOURCES:
        raise ConfigError(f"{where}: source must be one of {', '.join(SOURCES)}")
    if (kind == "vector") != (source == "npy"):
        raise ConfigError(f"{where}: kind 'vector' is for source 'npy' only (and vice versa)")
    out: dict[str, Any] = {"source": source if "source" in table else ""}
    for key in ("table", "sql", "dsn", "dsn_env", "path"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    allowed = {
        "csv": {"path"},
        "npy": {"path"},
        "parquet": {"path"},
        "duckdb": {"path", "table", "sql"},
        "postgres": {"path", "table", "sql", "dsn", "dsn_env"},
    }[source]
    extra = sorted(k for k in ("table", "sql", "dsn", "dsn_env", "path") if k in table)
    extra = [k for k in extra if k not in allowed]
    if extra:
        raise ConfigError(f"{where}: {', '.join(map(repr, extra))} not allowed for {source!r}")
    if source in ("csv", "npy", "parquet") and "path" not in table:
        raise ConfigError(f"{where}: missing required key 'path'")
    if source in ("duckdb", "postgres") and ("table" in table) == ("sql" in table):
        raise ConfigError(f"{where}: give exactly one of 'table' or 'sql' for {source!r}")
    if source == "postgres" and ("dsn" in table) == ("dsn_env" in table):
        raise ConfigError(f"{where}: give exactly one of 'dsn' or 'dsn_env' for 'postgres'")
    if source == "duckdb" and "path" not in table and "table" in table:
        raise ConfigError(f"{where}: an in-memory DuckDB (no 'path') needs 'sql'")
    if "table" in table and not _TABLE_NAME.fullmatch(table["table"]):
        raise ConfigError(f"{where}: table must be NAME or SCHEMA.NAME (letters, digits, _)")
    if "sql" in table:
        text = table["sql"].strip().rstrip(";").strip()
        if not text.lower().startswith(("select", "with", "from")):
            raise ConfigError(f"{where}: sql must be one SELECT statement")
        out["sql"] = text
    for key in ("table", "dsn", "dsn_env"):
        if key in table:
            out[key] = table[key]
    out["path"] = _resolve(base, table["path"]) if "path" in table else None
    timeout = _number(table, "timeout_seconds", where)
    if timeout is not None:
        if timeout <= 0:
            raise ConfigError(f"{where}: timeout_seconds must be positive")
        out["timeout_seconds"] = timeout
    return out


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


def parse_dataset(name: str, table: object, base: Path, party_id: str, where: str) -> DatasetConfig:
    """One ``[datasets.NAME]`` table of a party config (``where``: the file, for errors)."""
    dwhere = f"{where} [datasets.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{dwhere}: must be a table")
    max_rows = _require(table, "max_rows", int, dwhere)
    if max_rows < 1:
        raise ConfigError(f"{dwhere}: max_rows must be at least 1")
    kind = table.get("kind", "table")
    if kind not in ("table", "vector"):
        raise ConfigError(f"{dwhere}: kind must be 'table' or 'vector'")
    missing = table.get("missing", "error")
    if missing not in ("error", "drop"):
        raise ConfigError(f"{dwhere}: missing must be 'error' or 'drop'")
    if missing == "drop" and (kind != "table" or table.get("source", "csv") != "csv"):
        raise ConfigError(f"{dwhere}: missing = 'drop' is for CSV tables only")
    columns: list[ColumnConfig] = []
    for column, spec in (table.get("columns") or {}).items():
        cwhere = f"{dwhere} column {column!r}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{cwhere}: must be a table")
        lo, hi = _number(spec, "lo", cwhere), _number(spec, "hi", cwhere)
        if (lo is None) != (hi is None):
            raise ConfigError(f"{cwhere}: give both lo and hi, or neither")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"{cwhere}: lo must not exceed hi")
        categories = _categories(spec, cwhere)
        if categories and lo is not None:
            raise ConfigError(f"{cwhere}: a categorical column has no lo/hi")
        columns.append(ColumnConfig(column, lo, hi, str(spec.get("description", "")), categories))
    budget = _budget(table["budget"], f"{dwhere} budget", party=True) if "budget" in table else None
    policy = _participation(table, party_id, budget, dwhere)
    if "access" in table:
        policy["access"] = _access(table["access"], f"{dwhere} access")
    exact_filters = table.get("exact_filters", False)
    if not isinstance(exact_filters, bool):
        raise ConfigError(f"{dwhere}: exact_filters must be true or false")
    return DatasetConfig(
        **_source(table, base, kind, dwhere),
        exact_filters=exact_filters,
        name=name,
        max_rows=max_rows,
        kind=kind,
        columns=tuple(columns),
        description=str(table.get("description", "")),
        budget=budget,
        missing=missing,
        **policy,
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
    "DatasetConfig",
    "Participation",
    "parse_dataset",
]
