"""The party's datasets: CSV tables, .npy vectors and SQL sources, validated when loaded.

Sources (``source`` in the party config): CSV and .npy files are read whole and validated
here (:mod:`mpc.party.sources.files`); Parquet, DuckDB and PostgreSQL datasets are SQL
sources (:mod:`mpc.party.sources`) whose local statistics are pushed down into the engine
(:meth:`DataStore.aggregate`: one statement per request) and whose rows are streamed
(:meth:`DataStore.batches`), so a large table never enters this process whole. A SQL source
is validated at start-up and when its file changes (Parquet, DuckDB file), or when its last
validation is ``refresh_seconds`` old (PostgreSQL, in-memory DuckDB; checked on access):
the relation exists, declared columns exist with numeric (or, categorical, text) types, and
it has at most ``max_rows`` rows. A database failure during a job is logged without its
message and reported with the dataset's fixed "unavailable" text.

File datasets are validated when their file changes, never per job, into a *public status*
(see :mod:`mpc.party.sources.files` for the rules, empty cells and the ``missing`` policy).
What a job sees depends on the data only through that status: :meth:`DataStore.table` and
:meth:`DataStore.vector` raise :class:`InputDataError` with fixed texts naming only the
dataset and column, never a path, line number or value.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mpc.config import SQL_SOURCES, DatasetConfig
from mpc.errors import InputDataError
from mpc.party.sources.base import SourceFailure, SqlSource, Validated, open_source, validate
from mpc.party.sources.files import Dataset, Table, _complete_rows, _stamp, load_dataset
from mpc.protocol.frame import COMPARISONS, Aggregates, Condition, Request, aggregate_arrays
from mpc.ring import FloatVector

log = logging.getLogger(__name__)

_TABLE_CACHE_LIMIT = 1024  # distinct (dataset, columns) requests kept; then the cache restarts
#: Least time between two validations of a PostgreSQL (or in-memory DuckDB) dataset.
REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class _SqlLoad:
    stamp: object  # the files' stamps; None for a source without files
    checked: float  # time.monotonic() of the validation
    status: Validated
    source: SqlSource | None


def _sql_stamp(config: DatasetConfig) -> object:
    """Parquet: every matching file's (name, mtime, size); DuckDB file: it and its WAL."""
    if config.path is None or config.engine == "postgres":
        return None
    if config.engine == "parquet":
        return tuple((name, _stamp(Path(name))) for name in sorted(glob.glob(str(config.path))))
    return (_stamp(config.path), _stamp(config.path.with_name(config.path.name + ".wal")))


def _load_sql(config: DatasetConfig) -> _SqlLoad:
    """Open and validate a SQL source; never raises (logs the failure's type only)."""
    stamp = _sql_stamp(config)
    try:
        source = open_source(config)
    except ImportError:
        log.warning(
            "dataset %r: source %r needs the sql extra (pip install 'mpc[sql]'); the dataset "
            "is unavailable",
            config.name,
            config.engine,
        )
        return _SqlLoad(stamp, time.monotonic(), Validated(False), None)
    except Exception as exc:
        log.warning(
            "dataset %r (%s): cannot open: %s; the dataset is unavailable",
            config.name,
            config.engine,
            type(exc).__name__,
        )
        return _SqlLoad(stamp, time.monotonic(), Validated(False), None)
    try:
        status = validate(config, source.describe())
    except Exception as exc:  # a missing table, a refused connection: messages may quote data
        log.warning(
            "dataset %r (%s): cannot describe the table or query: %s; the dataset is unavailable",
            config.name,
            config.engine,
            str(exc) if isinstance(exc, SourceFailure) else type(exc).__name__,  # ours: no data
        )
        status = Validated(False)
    return _SqlLoad(stamp, time.monotonic(), status, source)


def _job_failure(name: str, exc: Exception) -> None:
    """Log an engine failure during a job: its type only (a driver's message may quote
    data); the engine has logged what it was doing."""
    if not isinstance(exc, SourceFailure):
        log.error(
            "dataset %r: the source failed during a job: %s (message withheld)",
            name,
            type(exc).__name__,
        )


# --- the store -------------------------------------------------------------------------


class DataStore:
    """Datasets validated at load time, reloaded whenever their file changes."""

    def __init__(
        self, datasets: tuple[DatasetConfig, ...], refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self._datasets = {d.name: d for d in datasets}
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # guards _loaded, _sql and _tables
        self._loaded: dict[str, Dataset] = {}
        self._sql: dict[str, _SqlLoad] = {}
        self._tables: dict[tuple[str, tuple[str, ...]], tuple[Dataset, Table]] = {}
        self._loading = {name: threading.Lock() for name in self._datasets}  # one loader each
        self.refresh()

    def config(self, name: str) -> DatasetConfig:
        try:
            return self._datasets[name]
        except KeyError:
            raise InputDataError(
                f"unknown dataset {name!r}; this party has {sorted(self._datasets)}"
            ) from None

    def _is_sql(self, name: str) -> bool:
        return self.config(name).engine in SQL_SOURCES

    def refresh(self) -> None:
        """(Re)load every dataset whose file changed since it was last loaded; re-validate
        sources without files (PostgreSQL) at most every ``refresh_seconds`` (every access
        does the same, so a caller need not call this)."""
        for name in self._datasets:
            if self._is_sql(name):
                self._current_sql(name)
            else:
                self._current(name)

    def _current(self, name: str) -> Dataset:
        config = self.config(name)
        assert config.path is not None
        with self._lock:
            loaded = self._loaded.get(name)
        if loaded is not None and loaded.stamp == _stamp(config.path):
            return loaded
        with self._loading[name]:  # concurrent readers wait for one load, not load twice
            with self._lock:
                loaded = self._loaded.get(name)
            if loaded is not None and loaded.stamp == _stamp(config.path):
                return loaded
            fresh = load_dataset(config)
            with self._lock:
                self._loaded[name] = fresh
                for key in [k for k in self._tables if k[0] == name]:
                    del self._tables[key]
            return fresh

    def _current_sql(self, name: str) -> _SqlLoad:
        """A SQL source's current load: re-validated when its files changed, or (no files:
        PostgreSQL, in-memory DuckDB) when the last validation is ``refresh_seconds`` old."""
        config = self.config(name)

        def fresh(loaded: _SqlLoad | None) -> bool:
            if loaded is None:
                return False
            if config.path is None or config.engine == "postgres":
                return time.monotonic() - loaded.checked < self._refresh_seconds
            return loaded.stamp == _sql_stamp(config)

        with self._lock:
            loaded = self._sql.get(name)
        if fresh(loaded):
            assert loaded is not None
            return loaded
        with self._loading[name]:
            with self._lock:
                loaded = self._sql.get(name)
            if fresh(loaded):
                assert loaded is not None
                return loaded
            new = _load_sql(config)
            with self._lock:
                self._sql[name] = new
            return new

    def dataset(self, name: str) -> Dataset:
        """The current load of a dataset (its public status; data for file datasets)."""
        if self._is_sql(name):
            status = self._current_sql(name).status
            return Dataset(name, None, status.available, status.header, status.rows)
        return self._current(name)

    def available(self, name: str) -> bool:
        if self._is_sql(name):
            return self._current_sql(name).status.available
        return self._current(name).available

    def column_available(self, name: str, column: str) -> bool:
        if self._is_sql(name):
            status = self._current_sql(name).status
            return status.available and (column in status.numeric or column in status.text)
        return self._current(name).column_available(column)

    def columns_of(self, name: str) -> list[str]:
        """The table's column names; the declared ones while the dataset is unavailable."""
        if self._is_sql(name):
            status = self._current_sql(name).status
            if status.available:
                return list(status.header)
        else:
            loaded = self._current(name)
            if loaded.available:
                return list(loaded.header)
        return [c.name for c in self._datasets[name].columns]

    def _check_columns(self, name: str, columns: list[str]) -> None:
        """Public checks: a table dataset, available, with these columns available."""
        config = self.config(name)
        if config.kind != "table":
            raise InputDataError(f"dataset {name!r} is a vector dataset; use vector_sum")
        if not self.available(name):
            raise InputDataError(f"dataset {name!r} is unavailable")
        header = set(self.columns_of(name))
        for column in columns:
            if column not in header:
                raise InputDataError(f"dataset {name!r} has no column {column!r}")
        for column in columns:
            if not self.column_available(name, column):
                raise InputDataError(f"column {column!r} of dataset {name!r} is unavailable")

    def _categorical(self, name: str) -> frozenset[str]:
        return frozenset(c.name for c in self.config(name).columns if c.categories)

    def table(self, name: str, columns: list[str]) -> Table:
        self._check_columns(name, columns)
        if self._is_sql(name):  # small tables only: statistics push down through aggregate()
            if not columns:
                return Table(self._current_sql(name).status.rows, {})
            parts = list(self.batches(name, columns))
            joined = {c: np.concatenate([p[c] for p in parts]) for c in columns}
            for values in joined.values():
                values.flags.writeable = False
            return Table(len(joined[columns[0]]), joined)
        loaded = self._current(name)
        key = (name, tuple(columns))
        with self._lock:
            cached = self._tables.get(key)
            if cached is not None and cached[0] is loaded:
                return cached[1]
        table = _complete_rows(loaded, columns)
        with self._lock:
            if len(self._tables) >= _TABLE_CACHE_LIMIT:
                self._tables.clear()
            if self._loaded.get(name) is loaded:
                self._tables[key] = (loaded, table)
            return table

    def _check_request(self, request: Request) -> None:
        """Public checks of how a request uses each column: numbers (terms, comparisons,
        bins) only from numeric columns, categories only from declared categorical ones."""
        name = request.frame.dataset
        self._check_columns(name, request.columns())
        categorical = self._categorical(name)
        numeric = [f.column for t in request.terms for f in t.factors]
        named: list[str] = []
        for key in request.frame.keys:
            (named if key.categories else numeric).append(key.column)
        pending: list[Condition] = [request.frame.where] if request.frame.where else []
        while pending:
            node = pending.pop()
            pending.extend(node.children)
            if node.op in COMPARISONS:
                numeric.append(node.column)
            elif node.children == () and node.column:
                named.append(node.column)
        for column in numeric:
            if column in categorical:
                raise InputDataError(
                    f"column {column!r} of dataset {name!r} is categorical, not a number"
                )
        for column in named:
            if column not in categorical:
                raise InputDataError(
                    f"column {column!r} of dataset {name!r} has no declared categories"
                )

    def aggregate(self, request: Request) -> Aggregates:
        """Per-cell aggregates of a frame over the complete rows: pushed down into the
        engine for SQL sources, else the numpy reference engine."""
        self._check_request(request)
        name = request.frame.dataset
        if not self._is_sql(name):
            table = self.table(name, request.columns())
            if not table.columns:  # no keys, no terms, no filter: one cell of every row
                return Aggregates(
                    np.array([table.rows], dtype=np.int64), np.zeros((0, 1), np.uint64)
                )
            return aggregate_arrays(request, table.columns)
        loaded = self._current_sql(name)
        if loaded.source is None or not loaded.status.available:
            raise InputDataError(f"dataset {name!r} is unavailable")
        try:
            return loaded.source.aggregate(request, self._categorical(name))
        except Exception as exc:
            _job_failure(name, exc)
        # Raised outside the handler: no driver exception rides along as __context__.
        raise InputDataError(f"dataset {name!r} is unavailable")

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 65536
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        """The complete rows of ``columns``, ``batch_rows`` at a time (categorical columns
        as text), streamed from the engine for SQL sources."""
        self._check_columns(name, columns)
        if not self._is_sql(name):
            table = self.table(name, columns)
            for start in range(0, max(table.rows, 1), batch_rows):
                yield {c: table.columns[c][start : start + batch_rows] for c in columns}
            return
        loaded = self._current_sql(name)
        if loaded.source is None:
            raise InputDataError(f"dataset {name!r} is unavailable")
        text = self._categorical(name)
        try:
            empty = True
            for batch in loaded.source.batches(columns, text, batch_rows):
                empty = False
                yield batch
            if empty:  # like a file dataset: one (empty) batch
                yield {c: np.zeros(0, dtype=object if c in text else np.float64) for c in columns}
            return
        except Exception as exc:
            _job_failure(name, exc)
        raise InputDataError(f"dataset {name!r} is unavailable")

    def vector(self, name: str) -> FloatVector:
        config = self.config(name)
        if config.kind != "vector":
            raise InputDataError(f"dataset {name!r} is a table; vector_sum needs a vector dataset")
        loaded = self._current(name)
        if not loaded.available:
            raise InputDataError(f"dataset {name!r} is unavailable")
        return loaded.columns["value"]


__all__ = ["REFRESH_SECONDS", "DataStore", "Dataset", "Table", "load_dataset"]
