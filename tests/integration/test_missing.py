"""The ``missing`` policy with real processes: "drop" computes on each party's complete rows,
"error" (the default) makes a column with an empty cell unavailable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpc.demo.cluster import DatasetFile, LocalCluster
from mpc.errors import JobFailedError

pytestmark = pytest.mark.integration

BOUNDS = {"x": (0.0, 100.0), "y": (0.0, 100.0)}

# Party a has empty cells in both columns; party b has none.
A_CSV = "x,y\n1,10\n,20\n3,\n4,40\n  ,\n6,60.5\n"
B_CSV = "x,y\n7,70\n8,80\n9,90\n"


def _rows(text: str) -> np.ndarray:
    lines = text.splitlines()[1:]
    cells = [[float(c) if c.strip() else np.nan for c in line.split(",")] for line in lines]
    return np.array(cells, dtype=np.float64).reshape(-1, 2)


def _complete(columns: list[int]) -> np.ndarray:
    data = np.vstack([_rows(A_CSV), _rows(B_CSV)])
    return data[~np.isnan(data[:, columns]).any(axis=1)]


def test_drop_uses_complete_rows_and_error_makes_the_column_unavailable(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(A_CSV)
    (data / "b.csv").write_text(B_CSV)

    def files(pid: str) -> dict[str, DatasetFile]:
        path = data / f"{pid}.csv"
        return {
            "gappy": DatasetFile(path, 100, bounds=BOUNDS, missing="drop"),
            "strict": DatasetFile(path, 100, bounds=BOUNDS),  # missing = "error" by default
        }

    cluster = LocalCluster(tmp_path / "cluster", {"a": files("a"), "b": files("b")})
    with cluster, cluster.client() as client:
        both = _complete([0, 1])
        result = client.sum("gappy", ["x", "y"])
        assert result.as_dict()["x"] == pytest.approx(both[:, 0].sum(), abs=result.tolerance)
        assert result.as_dict()["y"] == pytest.approx(both[:, 1].sum(), abs=result.tolerance)
        assert client.count("gappy", ["x", "y"]).value == both.shape[0] == 6

        only_x = _complete([0])
        result = client.mean("gappy", ["x"])
        assert result.value == pytest.approx(only_x[:, 0].mean(), abs=result.tolerance)
        assert client.count("gappy", ["x"]).value == only_x.shape[0] == 7
        assert client.count("gappy").value == 9  # no columns: every row

        # The same file under "error": an empty cell makes its column unavailable at a.
        with pytest.raises(JobFailedError) as info:
            client.sum("strict", ["x"])
        assert info.value.reason == "column 'x' of dataset 'strict' is unavailable at party 'a'"
        assert "line" not in str(info.value) and str(data) not in str(info.value)

        (party_a,) = [p for p in client.parties() if p.party_id == "a"]
        available = {(d.name, c.name): c.available for d in party_a.datasets for c in d.columns}
        assert available[("gappy", "x")] and available[("gappy", "y")]
        assert not available[("strict", "x")] and not available[("strict", "y")]
