"""QueryResult tables: layouts from the signed query, .to_pandas(), JSON groups, the CLI's
group-by parsing and table printing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mpc.cli._common import _parse_group_by, format_table
from mpc.client import PrivacyReport as ClientPrivacyReport
from mpc.client import QueryResult as ClientQueryResult
from mpc.protocol.frame import GroupKey
from mpc.protocol.query import Query
from mpc.protocol.spec import ColumnBound, NoiseMode, Statistic
from mpc.protocol.where import parse_where
from mpc.results import PrivacyReport, QueryResult, result_layout

SMOKER = GroupKey("smoker", categories=("yes", "no"))
BANDS = GroupKey("age", edges=(0, 40, 120))


def _result(
    statistic: str, labels: tuple[str, ...], values: list[float], **kw: object
) -> QueryResult:
    bounds = kw.pop("bounds", tuple(ColumnBound(c, 0, 120) for c in labels))
    return QueryResult(
        job_id="j1",
        statistic=statistic,
        dataset="health",
        labels=labels,
        values=np.array(values, dtype=np.float64),
        parties=("a", "b"),
        tolerance=0.0,
        frac_bits=16,
        bounds=bounds,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_client_reexports_the_result_types() -> None:
    assert ClientQueryResult is QueryResult
    assert ClientPrivacyReport is PrivacyReport


def test_grouped_mean_to_pandas() -> None:
    query = Query(Statistic.MEAN, "health", ("age", "bmi"), group_by=(SMOKER, BANDS))
    result = _result("mean", ("age", "bmi"), [float(i) for i in range(8)])
    layout = result_layout(result, query)
    assert layout is not None
    df = QueryResult(**{**result.__dict__, "layout": layout}).to_pandas()
    assert list(df.index.names) == ["smoker", "age"]
    assert list(df.columns) == ["age", "bmi"]
    assert df.loc[("no", "[40, 120]"), "bmi"] == 7.0
    assert df.loc[("yes", "[0, 40)"), "age"] == 0.0
    assert df.attrs["job_id"] == "j1"


def test_ungrouped_results_are_one_row() -> None:
    result = _result("sum", ("age", "bmi"), [3.0, 4.0])
    layout = result_layout(result, Query(Statistic.SUM, "health", ("age", "bmi")))
    assert layout is not None and layout.index == [()]
    df = QueryResult(**{**result.__dict__, "layout": layout}).to_pandas()
    assert df.shape == (1, 2) and df["bmi"].iloc[0] == 4.0
    # Without a layout (a result fetched by id): still one row.
    assert result.to_pandas().shape == (1, 2)


def test_histogram_layout_has_bins_as_the_last_key() -> None:
    edges = (0.0, 10.0, 20.0, 30.0)
    query = Query(
        Statistic.HISTOGRAM,
        "health",
        ("bmi",),
        bin_edges=edges,
        group_by=(SMOKER,),
        noise=NoiseMode.CENTRAL,
        epsilon=1.0,
    )
    result = _result("histogram", ("bmi",), [1, 2, 3, 4, 5, 6], bounds=(ColumnBound("bmi", 0, 30),))
    layout = result_layout(result, query)
    assert layout is not None
    assert layout.index_names == ["smoker", "bmi"]
    assert layout.index[-1] == ("no", "[20, 30]")
    df = QueryResult(**{**result.__dict__, "layout": layout}).to_pandas()
    assert df["count"].tolist() == [1, 2, 3, 4, 5, 6]
    ungrouped = _result("histogram", ("bmi",), [1, 2, 3], bounds=(ColumnBound("bmi", 0, 30),))
    assert ungrouped.to_pandas()["bmi"].tolist() == [1, 2, 3]  # one column of bins


def test_json_groups_and_table_text() -> None:
    query = Query(Statistic.COUNT, "health", where=parse_where("age > 3"), group_by=(SMOKER,))
    result = _result("count", ("count",), [12.0, float("nan")], bounds=())
    layout = result_layout(result, query)
    full = QueryResult(**{**result.__dict__, "layout": layout})
    data = full.to_json()
    assert data["groups"] == [
        {"keys": {"smoker": "yes"}, "values": {"count": 12.0}},
        {"keys": {"smoker": "no"}, "values": {"count": None}},
    ]
    lines = format_table(full)
    assert lines[0].split() == ["smoker", "count"]
    assert lines[2].split() == ["yes", "12"]
    assert lines[3].split() == ["no", "suppressed"]


def test_parse_group_by() -> None:
    assert _parse_group_by(["smoker,age:0,40,120", "sex"]) == ["smoker", "age:0,40,120", "sex"]
    assert _parse_group_by(["bmi:-5,0,5,region"]) == ["bmi:-5,0,5", "region"]


def test_to_pandas_needs_matching_sizes() -> None:
    result = _result("mean", ("age",), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        result.as_dict()
    assert isinstance(result.to_pandas(), pd.DataFrame)
