"""Party c's datasets and the in-process driver for :mod:`tests.security.test_frames`.

c's dataset ``D`` (numeric ``x1``, ``x2``; categorical ``g``, ``h`` with declared categories)
and its neighbours are written as CSV, Parquet and a DuckDB file (and loaded into PostgreSQL
when a server is available); a and b hold fixed CSV data. :class:`World` keeps the three
parties of every (source, neighbour) for the module and records c's observable outcome of
each job (see :mod:`tests.security.test_differential`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from mpc.config import BudgetConfig, ColumnConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.party.runtime import PartyRuntime
from mpc.protocol.frame import Condition, GroupKey
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, PrivacySpec, Statistic
from tests.helpers import identity
from tests.security.test_differential import (
    DBL_MAX,
    EXTREMES,
    MAX_BINS,
    PARTIES,
    UNDER_TEST,
    _close,
    _describe_error,
    drive_job,
    recorder,
)

JOB_ID = "frames-job-3"
MAX_ROWS = 40
ROWS = 16  # rows of c's dataset D
NUMERIC = ("x1", "x2")
COLOURS = ("red", "green", "blue")
ANSWERS = ("yes", "no")
NAMES = (*NUMERIC, "g", "h")
COLUMNS = (
    ColumnConfig("x1"),
    ColumnConfig("x2"),
    ColumnConfig("g", categories=COLOURS),
    ColumnConfig("h", categories=ANSWERS),
)

EXACT = "frames"  # cohort, exact_filters = true
STRICT = "frames_strict"  # cohort, exact filtered/grouped releases refused (the default)
DP = "frames_dp"  # dp-only, with a budget

Rows = dict[str, list[Any]]  # column -> values (None: missing)


# --- data ---------------------------------------------------------------------------------


def _rows(count: int, seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 90.0, size=(count, 2)).round(3)
    g = [COLOURS[i % 3] for i in range(count)]  # every colour present
    h = [ANSWERS[i % 2] for i in range(count)]
    return {"x1": x[:, 0].tolist(), "x2": x[:, 1].tolist(), "g": g, "h": h}


def _first(**values: Any) -> Callable[[Rows], Rows]:
    """D with some cells of its first row replaced."""

    def change(d: Rows) -> Rows:
        return {k: [values.get(k, v[0]), *v[1:]] for k, v in d.items()}

    return change


#: Neighbours of c's dataset D: name -> D'.
NEIGHBOURS: dict[str, Callable[[Rows], Rows]] = {
    **{f"row_{name}": _first(x1=value, x2=value) for name, value in EXTREMES.items()},
    "row_mixed": _first(x1=DBL_MAX, x2=-DBL_MAX),
    "g_undeclared": _first(g="purple"),
    "g_empty": _first(g=None),
    "h_undeclared_x_huge": _first(h="maybe", x1=1e300),
    "row_removed": lambda d: {k: v[1:] for k, v in d.items()},
    "emptied": lambda d: {k: [] for k in d},
}
ORIGINAL = "original"
SOURCES = ("csv", "parquet", "duckdb", "postgres")


def _write_csv(path: Path, rows: Rows) -> None:
    lines = [",".join(NAMES)]
    for i in range(len(rows["x1"])):
        cells = [rows[k][i] for k in NAMES]
        lines.append(
            ",".join(
                "" if v is None else repr(float(v)) if k in NUMERIC else str(v)
                for k, v in zip(NAMES, cells, strict=True)
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _arrow(rows: Rows) -> pa.Table:
    return pa.table(
        {k: pa.array(rows[k], type=pa.float64() if k in NUMERIC else pa.string()) for k in NAMES}
    )


def _load_pg(dsn: str, table: str, rows: Rows) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (x1 float8, x2 float8, g text, h text)")
        with conn.cursor().copy(f"COPY {table} (x1, x2, g, h) FROM STDIN") as copy:
            for i in range(len(rows["x1"])):
                copy.write_row([rows[k][i] for k in NAMES])


# --- configs --------------------------------------------------------------------------------


def _datasets(source: str, location: Path | str) -> tuple[DatasetConfig, ...]:
    """The three datasets of one party, all over the same rows served from ``source``
    (``location``: the directory of its files; PostgreSQL: ``dsn|table``)."""
    where: dict[str, Any]
    if source == "csv":
        assert isinstance(location, Path)
        where = {"path": location / "frames.csv", "missing": "drop"}
    elif source == "parquet":
        assert isinstance(location, Path)
        where = {"path": location / "frames.parquet", "source": "parquet"}
    elif source == "duckdb":
        assert isinstance(location, Path)
        where = {"path": location / "frames.duckdb", "source": "duckdb", "table": "frames"}
    else:
        dsn, table = str(location).split("|")
        where = {"path": None, "source": "postgres", "table": table, "dsn": dsn}
    common = {"columns": COLUMNS, "max_bins": MAX_BINS, **where}
    path = common.pop("path")
    cohort = {"participation": "cohort", "cohort": PARTIES}
    return (
        DatasetConfig(EXACT, path, MAX_ROWS, exact_filters=True, **cohort, **common),
        DatasetConfig(STRICT, path, MAX_ROWS, **cohort, **common),
        DatasetConfig(
            DP,
            path,
            MAX_ROWS,
            budget=BudgetConfig(epsilon=50.0, delta=0.01, allow_central=True),
            participation="dp-only",
            **common,
        ),
    )


def party_config(
    pid: str, datasets: tuple[DatasetConfig, ...], state_dir: Path, cert_dir: Path
) -> PartyConfig:
    unsigned = (
        {"require_signed_queries": False}
        if "require_signed_queries" in {f.name for f in dataclasses.fields(PartyConfig)}
        else {}
    )
    return PartyConfig(
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        datasets=datasets,
        ledger=state_dir / f"{pid}.state.sqlite",
        **unsigned,
    )


# --- adversarial specs ----------------------------------------------------------------------

SANE = (0.0, 100.0)
WIDE = (-1e12, 1e12)
HUGE = (-1e300, 1e300)


@dataclass(frozen=True)
class Case:
    name: str
    statistic: Statistic
    dataset: str = EXACT
    columns: tuple[str, ...] = ("x1",)
    bounds: tuple[float, float] = SANE
    frac_bits: int = 16
    where: Condition | None = None
    group_by: tuple[GroupKey, ...] = ()
    edges: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = ()
    privacy: PrivacySpec | None = None


def build_spec(case: Case, job_id: str = JOB_ID) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        statistic=case.statistic,
        dataset=case.dataset,
        columns=tuple(ColumnBound(c, *case.bounds) for c in case.columns),
        frac_bits=case.frac_bits,
        participants=tuple(Participant(pid, MAX_ROWS) for pid in PARTIES),
        privacy=case.privacy,
        bin_edges=case.edges,
        where=case.where,
        group_by=case.group_by,
        quantiles=case.quantiles,
    )


ROUNDS = (("query", 0), ("replay", 0), ("extra", 1))


# --- driving party c -------------------------------------------------------------------------


def observe(
    case: Case, job_id: str, runtimes: dict[str, PartyRuntime], replacements: dict[str, str]
) -> tuple[object, ...]:
    """Party c's observable outcome of one job (as in test_differential)."""
    replacements = {job_id: "<job>", **replacements}
    outcome: list[object] = []
    record = recorder(outcome, replacements)
    try:
        spec = build_spec(case, job_id)
    except Exception as exc:
        return (("spec", _describe_error(exc, replacements)),)
    rounds = [(label, round_id, None) for label, round_id in ROUNDS]
    drive_job(runtimes, spec, job_id, rounds, record, outcome)
    return tuple(outcome)


# --- the worlds: c's data on every source ------------------------------------------------------


class World:
    """c's D and neighbours written to every file source, a and b's fixed CSV data, and an
    outcome cache keyed by (case, source, neighbour)."""

    def __init__(self, root: Path, cert_dir: Path) -> None:
        self.root = root
        self.cert_dir = cert_dir
        self.identities = {pid: identity(cert_dir, pid) for pid in PARTIES}
        self.ab_dir = root / "ab"
        self.ab_dir.mkdir()
        _write_csv(self.ab_dir / "frames.csv", _rows(8, seed=1))
        original = _rows(ROWS, seed=2)
        self.data = {ORIGINAL: original, **{n: f(original) for n, f in NEIGHBOURS.items()}}
        self.c_dirs: dict[str, Path] = {}
        for name, rows in self.data.items():
            directory = root / f"c-{name}"
            directory.mkdir()
            self.c_dirs[name] = directory
            _write_csv(directory / "frames.csv", rows)
            pq.write_table(_arrow(rows), directory / "frames.parquet")
            con = duckdb.connect(str(directory / "frames.duckdb"))
            try:
                con.register("arrow_rows", _arrow(rows))
                con.execute("CREATE TABLE frames AS SELECT * FROM arrow_rows")
            finally:
                con.close()
        self.dsn: str | None = None
        self._jobs = itertools.count()
        self._cache: dict[tuple[str, str, str], tuple[object, ...]] = {}
        self._runtimes: dict[tuple[str, str], dict[str, PartyRuntime]] = {}

    def load_postgres(self, dsn: str) -> None:
        if self.dsn is None:
            for name, rows in self.data.items():
                _load_pg(dsn, _pg_table(name), rows)
            self.dsn = dsn

    def runtimes(self, source: str, neighbour: str) -> dict[str, PartyRuntime]:
        """The three parties of one world, kept for the module: every job has its own id,
        and every world sees the same jobs in the same order (so the same ledger charges)."""
        key = (source, neighbour)
        if key not in self._runtimes:
            state_dir = self.root / f"state-{source}-{neighbour}"
            state_dir.mkdir()
            location: Path | str = self.c_dirs[neighbour]
            if source == "postgres":
                assert self.dsn is not None
                location = f"{self.dsn}|{_pg_table(neighbour)}"
            c_datasets = _datasets(source, location)
            ab_datasets = _datasets("csv", self.ab_dir)
            self._runtimes[key] = {
                pid: PartyRuntime(
                    party_config(
                        pid,
                        c_datasets if pid == UNDER_TEST else ab_datasets,
                        state_dir,
                        self.cert_dir,
                    ),
                    self.identities[pid],
                )
                for pid in PARTIES
            }
        return self._runtimes[key]

    def outcome(self, case: Case, source: str, neighbour: str) -> tuple[object, ...]:
        key = (case.name, source, neighbour)
        if key not in self._cache:
            replacements = {str(self.c_dirs[neighbour]): "<data>", str(self.ab_dir): "<data>"}
            if source == "postgres":
                replacements[_pg_table(neighbour)] = "<table>"
            self._cache[key] = observe(
                case,
                f"frames-{next(self._jobs)}",
                self.runtimes(source, neighbour),
                replacements,
            )
        return self._cache[key]

    def close(self) -> None:
        for runtimes in self._runtimes.values():
            for runtime in runtimes.values():
                _close(runtime)


def _pg_table(neighbour: str) -> str:
    return "c_" + neighbour.replace("-", "m")
