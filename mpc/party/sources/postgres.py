"""PostgreSQL through psycopg 3: a table or the operator's SELECT, read only.

A connection per operation (``dsn``, or the environment variable ``dsn_env`` names, read
when connecting so a password need not sit in the config file), in a read-only transaction
with the dataset's ``statement_timeout``. Binned keys use ``width_bucket(x, thresholds)``
(a binary search, exact float8 comparisons). Training batches come from a server-side
cursor, ``batch_rows`` at a time, so a large table never sits in this process's memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from mpc.config import DatasetConfig
from mpc.party.sources.base import (
    NUMERIC,
    OTHER,
    TEXT,
    Description,
    SourceFailure,
    SqlSource,
    to_aggregates,
    to_columns,
)
from mpc.party.sources.sql import POSTGRES, aggregate_statement, relation, rows_statement
from mpc.protocol.frame import Aggregates, Request

#: Type OIDs: int2, int4, int8, float4, float8, numeric / text, varchar, bpchar, name.
_NUMERIC_OIDS = {21, 23, 20, 700, 701, 1700}
_TEXT_OIDS = {25, 1043, 1042, 19}
_CONNECT_TIMEOUT = 10


def column_kind(oid: int) -> str:
    if oid in _NUMERIC_OIDS:
        return NUMERIC
    return TEXT if oid in _TEXT_OIDS else OTHER


class PostgresSource(SqlSource):
    def __init__(self, config: DatasetConfig) -> None:
        super().__init__(config)
        self.relation = relation(config.table, config.sql)
        self._escaped = POSTGRES.escape(self.relation)  # in statements with parameters
        self._wide: frozenset[str] = frozenset()  # numeric-typed columns (see sql._wide)

    def _dsn(self) -> str:
        if self.config.dsn is not None:
            return self.config.dsn
        assert self.config.dsn_env is not None
        value = os.environ.get(self.config.dsn_env)
        if not value:
            raise SourceFailure(f"environment variable {self.config.dsn_env} is not set")
        return value

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._dsn(), connect_timeout=_CONNECT_TIMEOUT)
        try:
            conn.read_only = True
            milliseconds = max(1, int(self.config.timeout_seconds * 1000))
            conn.execute(f"SET statement_timeout = {milliseconds}".encode())
        except BaseException:
            conn.close()
            raise
        return conn

    def describe(self) -> Description:
        with self._connect() as conn:
            shape = f"SELECT * FROM {self.relation} AS s LIMIT 0"
            cursor = conn.execute(shape.encode())
            kinds = {d.name: column_kind(d.type_code) for d in cursor.description or ()}
            self._wide = frozenset(d.name for d in cursor.description or () if d.type_code == 1700)
            limit = int(self.config.max_rows) + 1  # count no further than refusing needs
            count = f"SELECT count(*) FROM (SELECT 1 FROM {self.relation} AS s LIMIT {limit}) AS c"
            row = conn.execute(count.encode()).fetchone()
            return Description(kinds, int(row[0]) if row else 0)

    def aggregate(self, request: Request, text: frozenset[str]) -> Aggregates:
        statement = aggregate_statement(POSTGRES, self._escaped, request, text, self._wide)
        try:
            with self._connect() as conn:
                rows = conn.execute(statement.text.encode(), statement.params).fetchall()
        except psycopg.Error as exc:
            raise self.failed("an aggregate", exc) from None
        return to_aggregates(request, rows)

    def batches(
        self, columns: list[str], text: frozenset[str], batch_rows: int
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        numeric = [c for c in columns if c not in text]
        texts = [c for c in columns if c in text]
        statement = rows_statement(POSTGRES, self.relation, numeric, texts, columns, self._wide)
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise self.failed("connecting", exc) from None
        try:
            with conn.cursor(name="mpc_rows") as cursor:
                cursor.itersize = batch_rows
                try:
                    cursor.execute(statement.encode())
                except psycopg.Error as exc:
                    raise self.failed("reading rows", exc) from None
                while True:
                    try:
                        rows = cursor.fetchmany(batch_rows)
                    except psycopg.Error as exc:
                        raise self.failed("reading rows", exc) from None
                    if not rows:
                        return
                    table = np.array(rows, dtype=object).reshape(len(rows), len(columns))
                    yield to_columns(columns, [table[:, i] for i in range(len(columns))], text)
        finally:
            conn.close()


__all__ = ["PostgresSource", "column_kind"]
