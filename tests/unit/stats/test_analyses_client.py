"""The analyses' client methods and CLI commands build the right queries."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pytest

from mpc.cli.analyses import ANALYSES, _run, parse_key, register
from mpc.client_analyses import DEFAULT_QUANTILE_BINS, AnalysesMixin, quantile_edges
from mpc.errors import QueryError
from mpc.protocol.frame import GroupKey
from mpc.protocol.spec import Statistic


class Recorder(AnalysesMixin):
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return "result"


def test_covariance_and_correlation_queries() -> None:
    client = Recorder()
    client.covariance("d", ["a", "b"], (0, 1), epsilon=1.0)
    client.correlation("d", ["a", "b"], group_by=["sex"])
    (args1, kw1), (args2, kw2) = client.calls
    assert args1 == (Statistic.COVARIANCE, "d", ["a", "b"], (0, 1)) and kw1 == {"epsilon": 1.0}
    assert args2[0] is Statistic.CORRELATION and kw2 == {"group_by": ["sex"]}
    with pytest.raises(QueryError, match="two columns"):
        client.covariance("d", ["a"])


def test_contingency_and_ttest_queries() -> None:
    client = Recorder()
    age = GroupKey("age", edges=(0, 40, 120))
    client.contingency("d", "sex", age)
    client.ttest("d", ["bmi"], by=age, bounds={"bmi": (10, 60)}, noise="central")
    (args1, kw1), (args2, kw2) = client.calls
    assert args1 == (Statistic.CONTINGENCY, "d", (), None) and kw1 == {"group_by": ["sex", age]}
    assert args2 == (Statistic.TTEST, "d", ["bmi"], {"bmi": (10, 60)})
    assert kw2 == {"group_by": [age], "noise": "central"}
    with pytest.raises(QueryError, match="exactly two"):
        client.ttest("d", ["bmi"], by=GroupKey("age", edges=(0, 1, 2, 3)))


def test_quantile_and_median_queries() -> None:
    client = Recorder()
    client.quantiles("d", "age", [0.1, 0.9], (0, 100), bins=10)
    client.median("d", "age", (0, 120))
    client.quantiles("d", "age", [0.5], edges=[0, 1, 5], group_by=["sex"])
    (args1, kw1), (_, kw2), (_, kw3) = client.calls
    assert args1 == (Statistic.QUANTILE, "d", ["age"], None)
    assert kw1["bin_edges"] == [float(e) for e in np.linspace(0, 100, 11)]
    assert kw1["quantiles"] == [0.1, 0.9]
    assert kw2["quantiles"] == [0.5] and len(kw2["bin_edges"]) == DEFAULT_QUANTILE_BINS + 1
    assert kw3["bin_edges"] == [0.0, 1.0, 5.0] and kw3["group_by"] == ["sex"]
    for bad in ([0.0], [1.5], []):
        with pytest.raises(QueryError):
            client.quantiles("d", "age", bad, (0, 1))
    with pytest.raises(QueryError):
        quantile_edges(None, None, None)
    with pytest.raises(QueryError):
        quantile_edges((0, 1), 4, [0, 1])
    with pytest.raises(QueryError):
        quantile_edges((1, 1), 4, None)


def test_parse_key() -> None:
    assert parse_key("sex") == "sex"
    assert parse_key("sex=f,m") == GroupKey("sex", categories=("f", "m"))
    assert parse_key("x:-1,0,1") == GroupKey("x", edges=(-1.0, 0.0, 1.0))
    for bad in ("x:1", "x:a,b", "=a", ""):
        with pytest.raises(QueryError):
            parse_key(bad)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="analysis_command", required=True))
    client = ["--coordinator", "h:1", "--tls-dir", "certs"]
    return parser.parse_args([*argv, *client])


def test_cli_commands_build_the_queries() -> None:
    client = Recorder()
    args = _parse(["correlation", "--dataset", "d", "--column", "a,b", "--bounds", "0:1"])
    _run(args, client)
    args = _parse(["contingency", "--dataset", "d", "--rows", "sex", "--cols=x:-1,0,1"])
    _run(args, client)
    args = _parse(["ttest", "--dataset", "d", "--column", "a", "--by", "sex=f,m", "--epsilon", "1"])
    _run(args, client)
    args = _parse(["median", "--dataset", "d", "--column", "a", "--bounds", "0:10"])
    _run(args, client)
    args = _parse(
        [
            "quantile",
            "--dataset",
            "d",
            "--column",
            "a",
            "--bins",
            "0,1,2",
            "--quantiles",
            "0.25,0.75",
        ]
    )
    _run(args, client)
    calls = client.calls
    assert [c[0][0] for c in calls] == [
        Statistic.CORRELATION,
        Statistic.CONTINGENCY,
        Statistic.TTEST,
        Statistic.QUANTILE,
        Statistic.QUANTILE,
    ]
    assert calls[0][0][3] == {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    assert calls[1][1]["group_by"] == ["sex", GroupKey("x", edges=(-1, 0, 1))]
    assert calls[2][1]["epsilon"] == 1.0 and calls[2][1]["group_by"] == [
        GroupKey("sex", categories=("f", "m"))
    ]
    assert calls[3][1]["quantiles"] == [0.5] and calls[3][1]["bin_edges"][-1] == 10.0
    assert calls[4][1]["bin_edges"] == [0.0, 1.0, 2.0] and calls[4][1]["quantiles"] == [0.25, 0.75]
    assert set(ANALYSES) == {
        "covariance",
        "correlation",
        "contingency",
        "ttest",
        "quantile",
        "median",
    }


def test_cli_refuses_bad_input() -> None:
    client = Recorder()
    with pytest.raises(QueryError):
        _run(_parse(["median", "--dataset", "d", "--column", "a,b", "--bounds", "0:1"]), client)
    with pytest.raises(QueryError):
        _run(_parse(["quantile", "--dataset", "d", "--column", "a", "--quantiles", "x"]), client)
    assert client.calls == []
