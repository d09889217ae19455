"""The per-dataset ``missing`` policy: "error" (an empty cell makes its column unavailable) or
"drop" (jobs drop, locally, the rows with an empty cell in the columns they use)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mpc.config import DatasetConfig, load_party_config
from mpc.errors import ConfigError, InputDataError
from mpc.party.data import DataStore

CANARY = "abc7355608"


def _store(tmp_path: Path, content: str, missing: str = "drop") -> DataStore:
    path = tmp_path / "data.csv"
    path.write_text(content)
    return DataStore((DatasetConfig("d", path, 100, missing=missing),))


GAPPY = "a,b,c\n1,2,3\n,5,6\n7,,9\n10,11,\n13,14,15\n"


def test_drop_keeps_columns_and_drops_incomplete_rows_per_job(tmp_path: Path) -> None:
    store = _store(tmp_path, GAPPY)
    assert all(store.column_available("d", c) for c in "abc")
    assert store.table("d", []).rows == 5
    a = store.table("d", ["a"])
    assert a.rows == 4 and a.column("a").tolist() == [1, 7, 10, 13]
    ab = store.table("d", ["a", "b"])
    assert ab.rows == 3
    assert ab.column("a").tolist() == [1, 10, 13] and ab.column("b").tolist() == [2, 11, 14]
    abc = store.table("d", ["c", "b", "a"])
    assert abc.rows == 2 and abc.column("c").tolist() == [3, 15]
    for table in (a, ab, abc):
        for values in table.columns.values():
            assert values.dtype == np.float64 and not values.flags.writeable
            assert np.isfinite(values).all() and values.size == table.rows
    assert store.table("d", ["a", "b"]) is ab  # cached per (dataset, columns)


def test_error_is_the_default_and_makes_the_column_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(GAPPY)
    store = DataStore((DatasetConfig("d", path, 100),))
    assert store.available("d")
    assert not any(store.column_available("d", c) for c in "abc")
    with pytest.raises(InputDataError, match=r"^column 'a' of dataset 'd' is unavailable$"):
        store.table("d", ["a"])


def test_drop_without_empty_cells_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, "a,b\n1,2\n3,4\n")
    table = store.table("d", ["a", "b"])
    assert table.rows == 2 and table.column("b").tolist() == [2, 4]
    assert store.dataset("d").missing == {}


def test_blank_and_quoted_empty_cells_are_missing(tmp_path: Path) -> None:
    store = _store(tmp_path, 'a,b\n1," 2"\n ,4\n"",6\n"7",8\n')
    table = store.table("d", ["a", "b"])
    assert table.rows == 2 and table.column("a").tolist() == [1, 7]
    assert store.table("d", ["b"]).column("b").tolist() == [2, 4, 6, 8]


def test_an_all_empty_column_is_available_and_leaves_no_rows(tmp_path: Path) -> None:
    store = _store(tmp_path, "a,b\n1,\n2,\n")
    assert store.column_available("d", "b")
    table = store.table("d", ["a", "b"])
    assert table.rows == 0 and table.column("a").size == 0


@pytest.mark.parametrize(
    ("content", "column", "line", "problem"),
    [
        pytest.param("a,b\n1,\n2,nan\n", "b", 3, "NaN or infinity", id="nan"),
        pytest.param("a,b\n,1\ninf,2\n", "a", 3, "NaN or infinity", id="inf"),
        pytest.param(f"a,b\n1,\n2,{CANARY}\n", "b", 3, "not a number", id="not-a-number"),
        pytest.param("a,b\n1,\n2,1_000\n", "b", 3, "not a number", id="underscore"),
        pytest.param("a,b\n1,\n2,1e999\n", "b", 3, "NaN or infinity", id="overflow"),
    ],
)
def test_drop_still_refuses_bad_cells(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str,
    column: str,
    line: int,
    problem: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = _store(tmp_path, content)
    assert not store.column_available("d", column)
    other = "a" if column == "b" else "b"
    assert store.column_available("d", other)
    with pytest.raises(InputDataError) as info:
        store.table("d", [column])
    assert str(info.value) == f"column {column!r} of dataset 'd' is unavailable"
    assert f"line {line}" in caplog.text and problem in caplog.text
    assert "missing value" not in caplog.text and CANARY not in caplog.text


def test_the_log_counts_empty_cells_without_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mpc.party.data"):
        _store(tmp_path, f"a,{CANARY}\n1,\n,2\n3,\n")
    assert "column 'a': 1 empty cells" in caplog.text
    assert f"column '{CANARY}': 2 empty cells" in caplog.text
    assert "1,\n" not in caplog.text


def test_a_fixed_file_is_loaded_again(tmp_path: Path) -> None:
    import os

    store = _store(tmp_path, GAPPY)
    assert store.table("d", ["a"]).rows == 4
    path = tmp_path / "data.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n")
    os.utime(path, ns=(10**18, 10**18))
    assert store.table("d", ["a", "b", "c"]).rows == 2
    assert store.dataset("d").missing == {}


PARTY = """
id = "a"
listen = "127.0.0.1:0"
[tls]
ca = "ca.pem"
cert = "a.pem"
key = "a.key"
[datasets.d]
path = "d.csv"
max_rows = 10
{extra}
"""


def _party(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "party.toml"
    path.write_text(PARTY.format(extra=extra))
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", "error"), ('missing = "error"', "error"), ('missing = "drop"', "drop")],
)
def test_config_parses_the_policy(tmp_path: Path, extra: str, expected: str) -> None:
    (dataset,) = load_party_config(_party(tmp_path, extra)).datasets
    assert dataset.missing == expected


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('missing = "zero"', "missing must be 'error' or 'drop'"),
        ("missing = true", "missing must be 'error' or 'drop'"),
        ('kind = "vector"\nmissing = "drop"', "for CSV tables only"),
    ],
)
def test_config_refuses_bad_policies(tmp_path: Path, extra: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_party_config(_party(tmp_path, extra))
