"""Bad data gets an error naming file, line and column, never the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpc.config import DatasetConfig
from mpc.errors import InputDataError
from mpc.party.data import DataStore, load_table, load_vector

CANARY = "8675309.123"


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_loads_requested_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "age,name,bmi\n30,x,20.5\n40,y,22\n")
    table = load_table(path, ["age", "bmi"])
    assert table.rows == 2
    assert table.column("age").tolist() == [30.0, 40.0]
    assert table.column("bmi").tolist() == [20.5, 22.0]


def test_count_needs_no_numeric_column(tmp_path: Path) -> None:
    assert load_table(_csv(tmp_path, "name\nx\ny\nz\n"), []).rows == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"age,bmi\n30,20\n40,abc{CANARY}\n", r"line 3, column 'bmi': not a number"),
        ("age,bmi\n30,20\n40,\n", r"line 3, column 'bmi': missing value"),
        ("age,bmi\n30,nan\n", r"line 2, column 'bmi': NaN or infinity"),
        ("age,bmi\ninf,1\n", r"line 2, column 'age': NaN or infinity"),
        ("age,bmi\n1,2,3\n", r"line 2: has 3 cells, the header has 2"),
        ("age,bmi\n", r"dataset is empty"),
        ("", r"is empty: expected a header"),
    ],
)
def test_bad_cells_are_located_without_their_value(tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(InputDataError, match=message) as info:
        load_table(path, ["age", "bmi"])
    assert str(path) in str(info.value)
    assert CANARY not in str(info.value) and "abc" not in str(info.value)
    assert info.value.__cause__ is None or CANARY not in str(info.value.__cause__)


def test_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"unknown column\(s\) \['weight'\]"):
        load_table(_csv(tmp_path, "age\n1\n"), ["weight"])


def test_empty_dataset_for_count(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="dataset is empty"):
        load_table(_csv(tmp_path, "age\n"), [])


def test_vector_dataset(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.array([1.0, np.nan]))
    with pytest.raises(InputDataError, match="element 1: NaN or infinity"):
        load_vector(path)
    np.save(path, np.zeros((2, 2)))
    with pytest.raises(InputDataError, match="one-dimensional"):
        load_vector(path)


def test_store_caches_until_the_file_changes(tmp_path: Path) -> None:
    path = _csv(tmp_path, "age\n1\n2\n")
    store = DataStore((DatasetConfig("d", path, max_rows=10),))
    first = store.table("d", ["age"])
    assert store.table("d", ["age"]) is first
    path.write_text("age\n1\n2\n3\n")
    assert store.table("d", ["age"]).rows == 3
    with pytest.raises(InputDataError, match="unknown dataset 'zzz'"):
        store.table("zzz", ["age"])
