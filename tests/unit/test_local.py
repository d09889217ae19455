"""``mpc.LocalCluster`` before start: data files, declarations and options (no processes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc.errors import ConfigError
from mpc.local import infer_categories


def test_categories_are_the_same_at_every_party() -> None:
    a = pd.DataFrame(
        {
            "sex": ["F", "F", None],
            "ward": pd.Categorical(["icu"] * 3, ["icu", "general"]),
            "age": [1.0, 2.0, 3.0],
        }
    )
    b = pd.DataFrame({"sex": ["M", ""], "ward": pd.Categorical(["x", "x"], ["general", "x"])})
    assert infer_categories([a, b]) == {"sex": ("F", "M"), "ward": ("icu", "general", "x")}


def test_frames_become_declared_files(tmp_path: Path) -> None:
    a = pd.DataFrame({"age": [30.5, 40.0], "sex": ["F", "F"], "smoker": [True, False]})
    b = pd.DataFrame({"age": [50.0], "sex": ["M"], "smoker": [False]})
    cluster = mpc.LocalCluster(
        {"a": {"people": a, "v": np.arange(3.0)}, "b": {"people": b}},
        workdir=tmp_path,
        bounds={"age": (0, 120)},
        categories={"people": {"smoker": None}},
        budget={"people": (1.0, 1e-6)},
        exact_filters=True,
        max_rows={"people": 10},
    )
    people = cluster.datasets["a"]["people"]
    assert people.bounds == {"age": (0.0, 120.0)}
    assert people.categories == {"sex": ("F", "M")}  # over both parties; smoker: not text
    assert people.budget == (1.0, 1e-6) and people.exact_filters is True
    assert people.max_rows == 10
    assert cluster.datasets["b"]["people"].categories == {"sex": ("F", "M")}
    written = pd.read_csv(people.path)
    assert written["smoker"].tolist() == [1, 0]  # booleans as numbers
    assert written["age"].tolist() == [30.5, 40.0]
    vector = cluster.datasets["a"]["v"]
    assert vector.kind == "vector" and vector.bounds == {} and vector.budget is None
    np.testing.assert_array_equal(np.load(vector.path), [0.0, 1.0, 2.0])
    assert cluster.party_ids == ["a", "b"]
    cluster.stop()  # never started: nothing to stop, the given workdir is kept
    assert tmp_path.is_dir()


def test_invalid_party_ids_fail_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid party id 'St Mary'"):
        mpc.LocalCluster({"St Mary": {"d": pd.DataFrame({"x": [1.0]})}}, workdir=tmp_path)
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match="file_format"):
        mpc.LocalCluster({"a": {}}, file_format="xlsx")


def test_temporary_workdir_is_removed(tmp_path: Path) -> None:
    cluster = mpc.LocalCluster({"a": {"d": pd.DataFrame({"x": [1.0]})}})
    workdir = cluster.workdir
    assert (workdir / "data" / "a" / "d.csv").is_file()
    cluster.stop()
    assert not workdir.exists()
    with pytest.raises(ConfigError, match="stopped"):
        cluster.start()
