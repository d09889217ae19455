"""Party and coordinator configuration files (TOML), parsed into frozen value classes.

Relative paths in a config file are resolved against the file's own directory, so a config
folder can be moved or mounted anywhere.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc.dp.accountant import Budget
from mpc.errors import ConfigError
from mpc.identity import Identity, check_party_id, load_identity


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    #: Certificate revocation list (PEM) from `mpc certs revoke`; None: ``crl.pem`` beside
    #: the CA certificate, when that file exists.
    crl: Path | None = None

    @property
    def crl_path(self) -> Path:
        return self.crl if self.crl is not None else self.ca.with_name("crl.pem")

    def load(self) -> Identity:
        return load_identity(self.ca, self.cert, self.key)

    @classmethod
    def from_dir(cls, directory: Path, name: str) -> TlsFiles:
        return cls(
            ca=directory / "ca.pem", cert=directory / f"{name}.pem", key=directory / f"{name}.key"
        )


@dataclass(frozen=True)
class ColumnConfig:
    name: str
    lo: float | None = None
    hi: float | None = None
    description: str = ""


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


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    path: Path
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

    @property
    def mode(self) -> str:
        if self.participation is not None:
            return self.participation
        return Participation.DP_ONLY if self.budget is not None else Participation.COHORT


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


def _check_listen(address: str, where: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: listen/address must look like HOST:PORT, got {address!r}")
    return address


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


def load_party_config(path: Path) -> PartyConfig:
    where = str(path)
    data = _read_toml(path)
    base = path.parent
    party_id = check_party_id(_require(data, "id", str, where))
    datasets: list[DatasetConfig] = []
    for name, table in _require(data, "datasets", dict, where).items():
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
        if missing == "drop" and kind != "table":
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
            columns.append(ColumnConfig(column, lo, hi, str(spec.get("description", ""))))
        budget = (
            _budget(table["budget"], f"{dwhere} budget", party=True) if "budget" in table else None
        )
        policy = _participation(table, party_id, budget, dwhere)
        if "access" in table:
            policy["access"] = _access(table["access"], f"{dwhere} access")
        datasets.append(
            DatasetConfig(
                name=name,
                path=_resolve(base, _require(table, "path", str, dwhere)),
                max_rows=max_rows,
                kind=kind,
                columns=tuple(columns),
                description=str(table.get("description", "")),
                budget=budget,
                missing=missing,
                **policy,
            )
        )
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
    "DEFAULT_MAX_BINS",
    "DEFAULT_MIN_PARTIES",
    "BudgetConfig",
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
