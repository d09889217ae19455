"""Public status of SQL sources (decided at load, never per job) and fixed error texts."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mpc.config import ColumnConfig, DatasetConfig
from mpc.errors import InputDataError
from mpc.party.data import DataStore
from mpc.protocol.frame import Factor, Frame, GroupKey, Request, Term
from tests.pg import PgServer

COLUMNS = (ColumnConfig("x"), ColumnConfig("g", categories=("a", "b")))


def _count(dataset: str) -> Request:
    return Request(Frame(dataset), (Term((Factor("x", 0, 10),), 1 << 40),), 8)


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"x": [1.0, 2.0, 3.0], "g": ["a", "b", "c"], "s": ["u", "v", "w"]}), path
    )
    return path


def test_parquet_status_and_columns(parquet: Path, caplog: pytest.LogCaptureFixture) -> None:
    columns = (*COLUMNS, ColumnConfig("s"), ColumnConfig("gone"))
    store = DataStore((DatasetConfig("p", parquet, 10, source="parquet", columns=columns),))
    assert store.available("p")
    assert store.columns_of("p") == ["x", "g", "s"]
    assert store.column_available("p", "x") and store.column_available("p", "g")
    assert not store.column_available("p", "s")  # declared numeric, holds text
    assert not store.column_available("p", "gone")
    assert "declared numeric but its type is text" in caplog.text
    assert "'gone' does not exist" in caplog.text
    with pytest.raises(InputDataError, match=r"^column 's' of dataset 'p' is unavailable$"):
        store.aggregate(Request(Frame("p"), (Term((Factor("s", 0, 1),), 10),), 4))
    with pytest.raises(InputDataError, match=r"^dataset 'p' has no column 'gone'$"):
        store.aggregate(Request(Frame("p"), (Term((Factor("gone", 0, 1),), 10),), 4))
    # a categorical column declared but numeric in the file is unavailable
    wrong = DataStore(
        (
            DatasetConfig(
                "p", parquet, 10, source="parquet", columns=(ColumnConfig("x", categories=("1",)),)
            ),
        )
    )
    assert not wrong.column_available("p", "x")


def test_over_max_rows_and_missing_file(parquet: Path, tmp_path: Path) -> None:
    store = DataStore(
        (
            DatasetConfig("p", parquet, 2, source="parquet", columns=COLUMNS),
            DatasetConfig("q", tmp_path / "none.parquet", 2, source="parquet"),
        )
    )
    assert not store.available("p") and not store.available("q")
    assert store.columns_of("p") == ["x", "g"]  # the declared ones
    with pytest.raises(InputDataError, match=r"^dataset 'p' is unavailable$"):
        store.aggregate(_count("p"))


def test_parquet_reloads_on_change(parquet: Path) -> None:
    store = DataStore((DatasetConfig("p", parquet, 10, source="parquet", columns=COLUMNS),))
    assert store.aggregate(_count("p")).counts.tolist() == [3]
    time.sleep(0.01)
    pq.write_table(pa.table({"x": [1.0, 2.0], "g": ["a", "b"]}), parquet)
    assert store.aggregate(_count("p")).counts.tolist() == [2]


def test_parquet_glob(tmp_path: Path) -> None:
    for i in range(3):
        pq.write_table(pa.table({"x": [float(i)] * (i + 1)}), tmp_path / f"part-{i}.parquet")
    config = DatasetConfig("p", tmp_path / "part-*.parquet", 10, source="parquet")
    assert DataStore((config,)).aggregate(_count("p")).counts.tolist() == [6]


def test_duckdb_file_missing_table_and_sql_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE t AS SELECT range::DOUBLE AS x, 'secret-' || range AS g FROM range(5)"
    )
    con.close()
    store = DataStore(
        (
            DatasetConfig("ok", path, 10, source="duckdb", table="t", columns=COLUMNS),
            DatasetConfig("missing", path, 10, source="duckdb", table="nope"),
            DatasetConfig(
                "badsql", path, 10, source="duckdb", sql="SELECT x, CAST(g AS INTEGER) AS y FROM t"
            ),
        )
    )
    assert store.available("ok") and not store.available("missing")
    assert store.aggregate(_count("ok")).counts.tolist() == [5]
    # the SELECT is valid, but fails on the data when a job reads y: a fixed public text
    assert store.available("badsql")
    request = Request(Frame("badsql"), (Term((Factor("y", 0, 1),), 10),), 4)
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(InputDataError) as raised:
        store.aggregate(request)
    assert str(raised.value) == "dataset 'badsql' is unavailable"
    assert raised.value.__cause__ is None and raised.value.__context__ is None  # no driver text
    assert "secret-" not in caplog.text and "ConversionException" in caplog.text


def test_statement_timeout_interrupts(tmp_path: Path) -> None:
    sql = "SELECT CAST(a.range AS DOUBLE) AS x FROM range(3000000) a, range(100000) b"
    config = DatasetConfig(
        "slow", None, 10, source="duckdb", sql="SELECT 1.0 AS x", timeout_seconds=0.2
    )
    store = DataStore((config,))
    assert store.available("slow")
    source = store._current_sql("slow").source  # run a slow statement through the engine
    assert source is not None
    started = time.monotonic()
    with pytest.raises(Exception):
        source._run(source._cursor(), f"SELECT count(*) FROM ({sql})", [])  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5


def test_csv_categorical_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "c.csv"
    path.write_text('x,g\n1,a\n2, b \n3,secretvalue\n4,"a"\n')
    store = DataStore((DatasetConfig("c", path, 10, columns=COLUMNS),))
    assert store.column_available("c", "g") and store.column_available("c", "x")
    assert "1 values outside the declared categories" in caplog.text
    assert "secretvalue" not in caplog.text
    request = Request(
        Frame("c", keys=(GroupKey("g", ("a", "b")),)), (Term((Factor("x", 0, 10),), 1 << 40),), 0
    )
    result = store.aggregate(request)
    assert result.counts.tolist() == [2, 1]
    assert result.sums.tolist() == [[5, 2]]
    # without categories declared, a text column is unavailable as before
    plain = DataStore((DatasetConfig("c", path, 10),))
    assert not plain.column_available("c", "g")
    # empty categorical cells follow the missing policy
    path.write_text("x,g\n1,a\n2,\n")
    assert not DataStore((DatasetConfig("c", path, 10, columns=COLUMNS),)).column_available(
        "c", "g"
    )
    dropping = DataStore((DatasetConfig("c", path, 10, columns=COLUMNS, missing="drop"),))
    assert dropping.aggregate(request).counts.tolist() == [1, 0]
    batches = list(dropping.batches("c", ["x", "g"]))
    assert batches[0]["g"].tolist() == ["a"] and np.array_equal(batches[0]["x"], [1.0])


def test_postgres_status_refresh_and_dsn_env(
    postgres: PgServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS st")
        conn.execute("CREATE TABLE st (x numeric, g varchar(10), d date)")
        conn.execute("INSERT INTO st VALUES (1.5, 'a', now()), (2.5, 'b', now())")
    monkeypatch.setenv("MPC_TEST_DSN", postgres.dsn)
    columns = (*COLUMNS, ColumnConfig("d"))
    configs = (
        DatasetConfig(
            "st", None, 10, source="postgres", table="st", dsn_env="MPC_TEST_DSN", columns=columns
        ),
        DatasetConfig("small", None, 1, source="postgres", table="st", dsn=postgres.dsn),
        DatasetConfig("none", None, 10, source="postgres", table="public.nope", dsn=postgres.dsn),
        DatasetConfig("noenv", None, 10, source="postgres", table="st", dsn_env="MPC_TEST_UNSET"),
        DatasetConfig(
            "down",
            None,
            10,
            source="postgres",
            table="st",
            dsn="host=127.0.0.1 port=1 user=x password=hunter2",
        ),
    )
    store = DataStore(configs, refresh_seconds=0.0)
    assert store.available("st")
    assert store.columns_of("st") == ["x", "g", "d"]
    assert store.column_available("st", "x") and store.column_available("st", "g")
    assert not store.column_available("st", "d")
    assert not store.available("small")  # over max_rows
    assert not store.available("none") and not store.available("noenv")
    assert not store.available("down")
    assert "hunter2" not in caplog.text
    assert "environment variable MPC_TEST_UNSET is not set" in caplog.text
    assert store.aggregate(_count("st")).counts.tolist() == [2]
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE st RENAME COLUMN x TO y")
    assert not store.column_available("st", "x")  # refresh_seconds=0: every access checks
    with pytest.raises(InputDataError, match="has no column 'x'"):
        store.aggregate(_count("st"))
    # a schema change between refreshes: the job fails with the fixed text
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE st")
    with pytest.raises(InputDataError, match=r"^dataset 'st' is unavailable$"):
        store.aggregate(_count("st"))
    with pytest.raises(InputDataError, match=r"^dataset 'st' is unavailable$"):
        list(store.batches("st", ["x"]))


def test_postgres_refresh_interval(postgres: PgServer) -> None:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ri")
        conn.execute("CREATE TABLE ri (x float8)")
        conn.execute("INSERT INTO ri VALUES (1), (2)")
    config = DatasetConfig("ri", None, 10, source="postgres", table="ri", dsn=postgres.dsn)
    store = DataStore((config,), refresh_seconds=3600)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE ri")
    store.refresh()  # within the interval: the status stays
    assert store.available("ri") and store.column_available("ri", "x")
    with pytest.raises(InputDataError, match=r"^dataset 'ri' is unavailable$"):
        store.aggregate(_count("ri"))  # but a job fails with the fixed text
    store._refresh_seconds = 0.0
    store.refresh()
    assert not store.available("ri")


def test_duckdb_file_stays_writable_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range::DOUBLE AS x FROM range(3)")
    con.close()
    store = DataStore((DatasetConfig("w", path, 10, source="duckdb", table="t"),))
    assert store.aggregate(_count("w")).counts.tolist() == [3]
    con = duckdb.connect(str(path))  # the party holds no lock between operations
    con.execute("INSERT INTO t VALUES (7), (8)")
    con.close()
    assert store.aggregate(_count("w")).counts.tolist() == [5]
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO t SELECT range FROM range(10)")
    con.close()
    assert not store.available("w")  # 15 rows > max_rows: re-validated on the change


def test_postgres_numeric_beyond_float8_saturates(postgres: PgServer) -> None:
    """A numeric value float8 cannot hold must not make the job fail (a data-dependent
    error): it reads as the float64 a CSV parser would give (infinity, 0)."""
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS wide")
        conn.execute("CREATE TABLE wide (x numeric)")
        conn.execute("INSERT INTO wide VALUES (1e400), (-1e400), (1e-400), (2.5), ('NaN'), (NULL)")
    store = DataStore(
        (DatasetConfig("w", None, 10, source="postgres", table="wide", dsn=postgres.dsn),)
    )
    request = Request(Frame("w"), (Term((Factor("x", -10, 10),), 1 << 40),), 0)
    result = store.aggregate(request)
    assert result.counts.tolist() == [4]  # NaN and NULL dropped
    assert int(result.sums[0, 0]) == 10 - 10 + 0 + 2
    (batch,) = list(store.batches("w", ["x"]))
    assert sorted(batch["x"].tolist()) == [-math.inf, 0.0, 2.5, math.inf]
