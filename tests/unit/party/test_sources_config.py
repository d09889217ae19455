"""Dataset source keys in the party config: defaults, SQL sources, categories, bad combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc.config import DatasetConfig, load_party_config
from mpc.errors import ConfigError
from mpc.party.sources.sql import DUCKDB, POSTGRES, quote_ident, relation


def _load(tmp_path: Path, body: str) -> DatasetConfig:
    path = tmp_path / "party.toml"
    path.write_text(
        'id = "a"\nlisten = "127.0.0.1:0"\n[tls]\nca = "ca.pem"\ncert = "a.pem"\nkey = "a.key"\n'
        "[datasets.d]\nmax_rows = 100\n" + body
    )
    (dataset,) = load_party_config(path).datasets
    return dataset


def test_defaults_keep_files(tmp_path: Path) -> None:
    table = _load(tmp_path, 'path = "x.csv"\n')
    assert table.engine == "csv" and table.source == "" and table.path == tmp_path / "x.csv"
    assert not table.exact_filters and table.timeout_seconds == 300
    vector = _load(tmp_path, 'path = "v.npy"\nkind = "vector"\n')
    assert vector.engine == "npy"


def test_sql_sources(tmp_path: Path) -> None:
    pg = _load(
        tmp_path,
        'source = "postgres"\ndsn_env = "PGDSN"\nsql = "SELECT * FROM t WHERE a LIKE \'%x\';"\n'
        "exact_filters = true\ntimeout_seconds = 5\n",
    )
    assert pg.engine == "postgres" and pg.path is None and pg.dsn_env == "PGDSN"
    assert pg.sql == "SELECT * FROM t WHERE a LIKE '%x'" and pg.exact_filters
    assert pg.timeout_seconds == 5.0
    duck = _load(tmp_path, 'source = "duckdb"\npath = "d.duckdb"\ntable = "main.rows"\n')
    assert duck.table == "main.rows" and duck.path == tmp_path / "d.duckdb"
    memory = _load(tmp_path, 'source = "duckdb"\nsql = "SELECT * FROM read_csv(\'a.csv\')"\n')
    assert memory.path is None
    parquet = _load(tmp_path, 'source = "parquet"\npath = "parts/*.parquet"\n')
    assert parquet.path == tmp_path / "parts/*.parquet"


def test_categories(tmp_path: Path) -> None:
    dataset = _load(
        tmp_path,
        'path = "x.csv"\n[datasets.d.columns.g]\ncategories = ["a", "b"]\n'
        "[datasets.d.columns.x]\nlo = 0\nhi = 1\n",
    )
    g = dataset.column("g")
    assert g is not None and g.categories == ("a", "b")
    x = dataset.column("x")
    assert x is not None and x.categories == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('source = "mysql"\npath = "x"\n', "source must be one of"),
        ('source = "postgres"\ndsn = "host=x"\n', "exactly one of 'table' or 'sql'"),
        ('source = "postgres"\ntable = "t"\nsql = "SELECT 1"\ndsn = "h"\n', "exactly one of"),
        ('source = "postgres"\ntable = "t"\n', "exactly one of 'dsn' or 'dsn_env'"),
        ('source = "postgres"\ntable = "t"\ndsn = "a"\ndsn_env = "B"\n', "'dsn' or 'dsn_env'"),
        ('source = "duckdb"\ntable = "t"\n', "in-memory DuckDB"),
        ('source = "duckdb"\npath = "d"\ntable = "t; DROP TABLE x"\n', "table must be NAME"),
        ('source = "duckdb"\npath = "d"\nsql = "DELETE FROM t"\n', "one SELECT"),
        ('source = "parquet"\n', "missing required key 'path'"),
        ('source = "parquet"\npath = "p"\ntable = "t"\n', "'table' not allowed for 'parquet'"),
        ('path = "x.csv"\ndsn = "h"\n', "'dsn' not allowed for 'csv'"),
        ('source = "parquet"\npath = "p"\nkind = "vector"\n', "kind 'vector'"),
        ('source = "parquet"\npath = "p"\nmissing = "drop"\n', "missing = 'drop'"),
        ('path = "x.csv"\nexact_filters = "yes"\n', "exact_filters must be true or false"),
        ('path = "x.csv"\ntimeout_seconds = 0\n', "timeout_seconds must be positive"),
        ('path = "x"\n[datasets.d.columns.g]\ncategories = "a"\n', "list of non-empty strings"),
        ('path = "x"\n[datasets.d.columns.g]\ncategories = ["a", "a"]\n', "listed twice"),
        ('path = "x"\n[datasets.d.columns.g]\ncategories = ["a"]\nlo = 0\nhi = 1\n', "no lo/hi"),
    ],
)
def test_bad_combinations(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, body)


def test_identifiers_and_operator_sql_are_wrapped() -> None:
    assert quote_ident('a"b') == '"a""b"'
    assert relation("s.t", None) == '"s"."t"'
    assert relation(None, "SELECT 1") == "(SELECT 1)"
    assert relation(None, None, parquet="it's.parquet") == "read_parquet('it''s.parquet')"
    assert POSTGRES.escape("LIKE '%a'") == "LIKE '%%a'" and DUCKDB.escape("%") == "%"
