"""Datasets are validated when loaded; jobs see only public texts, the operator log the rest."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from mpc.config import ColumnConfig, DatasetConfig
from mpc.errors import InputDataError
from mpc.party.data import DataStore

CANARY = "abc7355608"
_CLOCK = itertools.count(1_700_000_000)


def _write(path: Path, content: str | bytes) -> Path:
    """Write and give the file a fresh mtime, so a rewrite of the same size is noticed."""
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    ns = next(_CLOCK) * 1_000_000_000
    os.utime(path, ns=(ns, ns))
    return path


def _store(path: Path, max_rows: int = 10, **kwargs: object) -> DataStore:
    return DataStore((DatasetConfig("d", path, max_rows, **kwargs),))  # type: ignore[arg-type]


def _public(exc: pytest.ExceptionInfo[InputDataError], path: Path) -> str:
    text = str(exc.value)
    assert str(path) not in text and path.name not in text
    assert "line" not in text and CANARY not in text
    assert exc.value.__cause__ is None
    return text


# (content, the bad column, its first bad line, words in the log)
COLUMN_CASES = [
    pytest.param(f"age,bmi\n30,20\n40,{CANARY}\n", "bmi", 3, "not a number", id="not-a-number"),
    pytest.param("age,bmi\n30,20\n40,\n", "bmi", 3, "missing value", id="missing"),
    pytest.param("age,bmi\n30,20\n40, \n", "bmi", 3, "missing value", id="blank-cell"),
    pytest.param("age,bmi\n30,nan\n", "bmi", 2, "NaN or infinity", id="nan"),
    pytest.param("age,bmi\n1,2\n-inf,1\n", "age", 3, "NaN or infinity", id="inf"),
    pytest.param("age,bmi\n1,2\n1e999,1\n", "age", 3, "NaN or infinity", id="overflow"),
    pytest.param("age,bmi\n1,2\n3,1_000\n", "bmi", 3, "not a number", id="underscore"),
]


@pytest.mark.parametrize(("content", "column", "line", "problem"), COLUMN_CASES)
def test_a_bad_cell_makes_only_its_column_unavailable(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str,
    column: str,
    line: int,
    problem: str,
) -> None:
    path = _write(tmp_path / "data.csv", content)
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = _store(path)
    assert store.available("d")
    assert not store.column_available("d", column)
    with pytest.raises(InputDataError) as info:
        store.table("d", ["age", "bmi"])
    assert _public(info, path) == f"column {column!r} of dataset 'd' is unavailable"
    good = "age" if column == "bmi" else "bmi"
    assert store.column_available("d", good)
    assert store.table("d", [good]).column(good).size == store.table("d", []).rows
    assert store.columns_of("d") == ["age", "bmi"]
    log = caplog.text
    assert str(path) in log and f"line {line}" in log and f"column {column!r}" in log
    assert problem in log
    assert CANARY not in log


@pytest.mark.parametrize(
    ("content", "max_rows", "where", "problem"),
    [
        pytest.param("age,bmi\n1,2\n1,2,3\n", 10, "line 3", "has 3 cells", id="extra-cell"),
        pytest.param(f"age,bmi\n1,2\n{CANARY}\n", 10, "line 3", "has 1 cells", id="short-row"),
        pytest.param("age,bmi\n1,2\n3,4\n5,6\n", 2, "line 4", "over max_rows=2", id="max-rows"),
        pytest.param("", 10, "line 1", "no header", id="empty-file"),
        pytest.param("\nage\n1\n", 10, "line 1", "no header", id="blank-header"),
        pytest.param("age,age\n1,2\n", 10, "line 1", "column 'age' twice", id="dup-header"),
        pytest.param(
            b"age,bmi\n1,2\n3,\xff" + CANARY.encode() + b"\n",
            10,
            "line 3, column 'bmi'",
            "not UTF-8",
            id="not-utf8",
        ),
        pytest.param('"age","bmi"\n"1","2"\n3,4,5\n', 10, "line 3", "has 3 cells", id="quoted"),
    ],
)
def test_a_bad_file_makes_the_dataset_unavailable(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str | bytes,
    max_rows: int,
    where: str,
    problem: str,
) -> None:
    path = _write(tmp_path / "data.csv", content)
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = _store(path, max_rows, columns=(ColumnConfig("age", 0, 120),))
    assert not store.available("d")
    assert not store.column_available("d", "age")
    with pytest.raises(InputDataError) as info:
        store.table("d", ["age"])
    assert _public(info, path) == "dataset 'd' is unavailable"
    assert store.columns_of("d") == ["age"]  # the declared columns
    log = caplog.text
    assert str(path) in log and where in log and problem in log
    assert CANARY not in log


def test_unreadable_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "missing.csv"
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = _store(path)
    assert not store.available("d") and store.columns_of("d") == []
    with pytest.raises(InputDataError) as info:
        store.table("d", [])
    assert _public(info, path) == "dataset 'd' is unavailable"
    assert str(path) in caplog.text and "cannot read" in caplog.text


def test_loads_columns_as_contiguous_read_only_float64(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.csv", "age,name,bmi\r\n30,x,20.5\r\n\r\n40,y,22\r\n")
    store = _store(path)
    table = store.table("d", ["age", "bmi"])
    assert table.rows == 2 and list(table.columns) == ["age", "bmi"]
    assert table.column("age").tolist() == [30.0, 40.0]
    assert table.column("bmi").tolist() == [20.5, 22.0]
    for values in table.columns.values():
        assert values.dtype == np.float64 and values.flags.c_contiguous
        assert not values.flags.writeable
    assert store.columns_of("d") == ["age", "name", "bmi"]
    assert not store.column_available("d", "name")  # text: unavailable, but only that column
    assert store.table("d", []).rows == 2  # a count needs no numeric column
    assert store.table("d", ["age", "bmi"]) is table  # cached


def test_quoted_cells_and_byte_order_mark(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.csv", '\ufeff"age","bmi"\n"1","2.5"\n3,4\n')
    table = _store(path).table("d", ["age", "bmi"])
    assert table.column("age").tolist() == [1.0, 3.0]
    assert table.column("bmi").tolist() == [2.5, 4.0]


def test_header_only_is_available_with_zero_rows(tmp_path: Path) -> None:
    store = _store(_write(tmp_path / "data.csv", "age,bmi\n"))
    assert store.available("d") and store.column_available("d", "bmi")
    table = store.table("d", ["age", "bmi"])
    assert table.rows == 0
    for values in table.columns.values():
        assert values.dtype == np.float64 and values.shape == (0,)
    assert store.table("d", []).rows == 0


def test_public_texts_for_requests(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.csv", "age\n1\n")
    vector_path = tmp_path / "v.npy"
    np.save(vector_path, np.ones(3))
    store = DataStore(
        (
            DatasetConfig("d", path, 10),
            DatasetConfig("v", vector_path, 1, kind="vector"),
        )
    )
    with pytest.raises(InputDataError) as info:
        store.table("d", ["weight"])
    assert _public(info, path) == "dataset 'd' has no column 'weight'"
    with pytest.raises(InputDataError, match="dataset 'v' is a vector dataset; use vector_sum"):
        store.table("v", ["value"])
    with pytest.raises(InputDataError, match="dataset 'd' is a table; vector_sum needs"):
        store.vector("d")
    with pytest.raises(InputDataError, match="unknown dataset 'zzz'"):
        store.table("zzz", ["age"])
    with pytest.raises(InputDataError, match="unknown dataset 'zzz'"):
        store.available("zzz")


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        pytest.param(np.array([1.0, np.nan]), "element 1: NaN or infinity", id="nan"),
        pytest.param(np.zeros((2, 2)), "one-dimensional", id="2d"),
        pytest.param(np.array(["a", "b"]), "one-dimensional numeric", id="strings"),
        pytest.param(np.zeros(0), "empty", id="empty"),
    ],
)
def test_bad_vector_dataset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, array: np.ndarray, problem: str
) -> None:
    path = tmp_path / "v.npy"
    np.save(path, array)
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = DataStore((DatasetConfig("v", path, 1, kind="vector"),))
    assert not store.available("v")
    with pytest.raises(InputDataError) as info:
        store.vector("v")
    assert _public(info, path) == "dataset 'v' is unavailable"
    assert str(path) in caplog.text and problem in caplog.text


def test_vector_dataset(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.arange(4, dtype=np.int32))
    store = DataStore((DatasetConfig("v", path, 1, kind="vector"),))
    vector = store.vector("v")
    assert vector.dtype == np.float64 and vector.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert store.columns_of("v") == ["value"] and store.column_available("v", "value")
    _write(path, b"not an npy file")
    assert not store.available("v")


def test_a_changed_file_is_validated_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "data.csv", "age\n1\n2\n")
    store = _store(path)
    first = store.table("d", ["age"])
    assert store.table("d", ["age"]) is first
    _write(path, "age\n1\nx\n")  # same size: noticed by the new mtime
    assert not store.column_available("d", "age")
    with pytest.raises(InputDataError, match="column 'age' of dataset 'd' is unavailable"):
        store.table("d", ["age"])
    _write(path, "age\n1\n2\n3\n")
    table = store.table("d", ["age"])
    assert table is not first and table.rows == 3
    _write(path, "age\n1\n2,3\n")
    store.refresh()
    assert not store.available("d")
    _write(path, "age\n5\n")
    assert store.table("d", ["age"]).column("age").tolist() == [5.0]
    path.unlink()
    assert not store.available("d")


def test_a_bad_file_is_logged_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "data.csv", "age\nx\n")
    with caplog.at_level(logging.WARNING, logger="mpc.party.data"):
        store = _store(path)
        for _ in range(3):
            assert not store.column_available("d", "age")
            store.refresh()
    assert caplog.text.count("line 2, column 'age'") == 1


def test_concurrent_readers_share_one_load(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.csv", "age\n" + "1\n" * 1000)
    store = _store(path, max_rows=10_000)
    _write(path, "age\n" + "2\n" * 1000)
    tables = []

    def read() -> None:
        tables.append(store.table("d", ["age"]))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tables) == 8 and all(t is tables[0] for t in tables)
    assert tables[0].column("age").sum() == 2000.0
