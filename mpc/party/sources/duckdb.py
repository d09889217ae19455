"""DuckDB: Parquet files, a .duckdb file (read only), or an in-memory DuckDB running the
operator's SELECT over local CSV/Parquet files.

A .duckdb file is opened read only for each operation (so the operator can write to it
between jobs; a change of the file or its WAL triggers re-validation). Parquet and in-memory
SQL run on one in-memory database per load, each operation on its own cursor (a DuckDB
cursor is a separate connection to the same database, safe to use from its own thread).
Python replacement scans are switched off, so no name in a statement can resolve to a
Python object. Binned keys are cut by an ASOF join against the key's edges, registered as an
Arrow table on the statement's cursor: exact (the same float64 comparisons as numpy's
``searchsorted``) and fast at 2^20 bins, where a CASE per edge would not be. A statement
running longer than the dataset's ``timeout_seconds`` is interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]

from mpc.config import DatasetConfig
from mpc.party.sources.base import (
    NUMERIC,
    OTHER,
    TEXT,
    Description,
    SqlSource,
    to_aggregates,
    to_columns,
)
from mpc.party.sources.sql import DUCKDB, aggregate_statement, relation, rows_statement
from mpc.protocol.frame import Aggregates, Request

_NUMERIC = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
}


def column_kind(type_name: str) -> str:
    name = type_name.upper()
    if name in _NUMERIC or name.startswith("DECIMAL"):
        return NUMERIC
    if name == "VARCHAR" or name.startswith("ENUM"):
        return TEXT
    return OTHER


class DuckDbSource(SqlSource):
    def __init__(self, config: DatasetConfig) -> None:
        super().__init__(config)
        if config.engine == "parquet":
            assert config.path is not None
            self.relation = relation(None, None, parquet=str(config.path))
            database = ":memory:"
        else:
            self.relation = relation(config.table, config.sql)
            database = str(config.path) if config.path is not None else ":memory:"
        # A .duckdb file is opened (read only) per operation, so the operator can update it
        # between jobs; Parquet and the operator's SELECT over files share one in-memory
        # database, each operation on its own cursor.
        self._file = database if database != ":memory:" else None
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET python_enable_replacements = false")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._file is not None:
            cursor = duckdb.connect(self._file, read_only=True)
        else:
            cursor = self._con.cursor()
        cursor.execute("SET python_enable_replacements = false")
        return cursor

    def _run(self, cursor: duckdb.DuckDBPyConnection, text: str, params: list[Any]) -> Any:
        timer = threading.Timer(self.config.timeout_seconds, cursor.interrupt)
        timer.daemon = True
        timer.start()
        try:
            return cursor.execute(text, params).fetchall()
        finally:
            timer.cancel()

    def describe(self) -> Description:
        cursor = self._cursor()
        try:
            describe = f"DESCRIBE SELECT * FROM {self.relation} AS s"
            shape = self._run(cursor, describe, [])
            kinds = {str(row[0]): column_kind(str(row[1])) for row in shape}
            count = f"SELECT count(*) FROM {self.relation} AS s"
            rows = self._run(cursor, count, [])
            return Description(kinds, int(rows[0][0]))
        finally:
            cursor.close()

    def aggregate(self, request: Request, text: frozenset[str]) -> Aggregates:
        statement = aggregate_statement(DUCKDB, self.relation, request, text)
        try:
            cursor = self._cursor()
            try:
                for index, edges in statement.edges.items():
                    table = pa.table(
                        {
                            "e": np.asarray(edges, dtype=np.float64),
                            "code": np.arange(len(edges), dtype=np.int64),
                        }
                    )
                    cursor.register(f"__mpc_edges_{index}", table)
                rows = self._run(cursor, statement.text, statement.params)
            finally:
                cursor.close()
        except (duckdb.Error, pa.ArrowException) as exc:
            raise self.failed("an aggregate", exc) from None
        return to_aggregates(request, rows)

    def batches(
        self, columns: list[str], text: frozenset[str], batch_rows: int
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        numeric = [c for c in columns if c not in text]
        texts = [c for c in columns if c in text]
        statement = rows_statement(DUCKDB, self.relation, numeric, texts, columns)
        cursor = self._cursor()
        try:
            try:
                relation: Any = cursor.sql(statement)
                # DuckDB 2 renamed the relation's record_batch (1.x) to to_arrow_reader.
                stream = getattr(relation, "to_arrow_reader", None) or relation.record_batch
                reader = stream(batch_rows)
            except duckdb.Error as exc:
                raise self.failed("reading rows", exc) from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (duckdb.Error, pa.ArrowException) as exc:
                    raise self.failed("reading rows", exc) from None
                arrays = [
                    batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(columns))
                ]
                yield to_columns(columns, arrays, text)
        finally:
            cursor.close()

    def close(self) -> None:
        self._con.close()


__all__ = ["DuckDbSource", "column_kind"]
