"""Differential test of the query surface over frames, on every dataset source.

The same method as :mod:`tests.security.test_differential`: party ``c`` is driven in-process
through setup, agree, an adversarial schedule of rounds and abort, once on its dataset ``D``
and once on each neighbour ``D'``, and its *observable outcome* (each stage's success or exact
error text, the lengths it announced and streamed, the rounds it answered) must be identical.
Here the specs use ``where`` (comparisons at, above and below extreme values, ``in`` on a
categorical column), ``group_by`` (categorical, binned with edges at and around the extreme
values, two keys) and the statistics covariance, correlation, contingency, ttest and quantile,
exact (on a dataset whose policy allows exact filtered releases, and on one whose does not)
and with DP. Neighbours change one row to extreme numbers, give it an undeclared category or
an empty category cell (``missing = "drop"`` for CSV, NULL elsewhere), remove it, or empty
the dataset.

Party ``c``'s dataset is served from CSV, Parquet, a DuckDB file and PostgreSQL (when the
``postgres`` fixture has a server): the outcome must also be the same on every source, texts
included (paths replaced by a placeholder).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mpc.protocol.frame import Condition, GroupKey, Op
from mpc.protocol.spec import Statistic
from tests.security.frames_world import (
    ANSWERS,
    COLOURS,
    DP,
    HUGE,
    NEIGHBOURS,
    NUMERIC,
    ORIGINAL,
    SOURCES,
    STRICT,
    WIDE,
    Case,
    World,
)
from tests.security.test_differential import DBL_MAX, EXTREMES, MAX_BINS, central, distributed


def cmp(op: str, value: float, column: str = "x1") -> Condition:
    return Condition(Op(op), column, value=value)


def isin(*categories: str, column: str = "g") -> Condition:
    return Condition(Op.IN, column, categories=categories)


G = GroupKey("g", categories=COLOURS)
H = GroupKey("h", categories=ANSWERS)


def binned(*edges: float, column: str = "x1") -> GroupKey:
    return GroupKey(column, edges=edges)


def _where_cases() -> list[Case]:
    cases = []
    for label, value in EXTREMES.items():
        for rel, op in (("at", "=="), ("below", "<"), ("above", ">=")):
            cases.append(Case(f"where_{rel}_{label}_mean", Statistic.MEAN, where=cmp(op, value)))
    cases += [
        Case(
            "where_ne_dblmax_sum_wide",
            Statistic.SUM,
            bounds=WIDE,
            frac_bits=8,
            where=cmp("!=", DBL_MAX),
        ),
        Case("where_le_1e-300_count", Statistic.COUNT, columns=(), where=cmp("<=", 1e-300)),
        Case(
            "where_gt_-dblmax_x2_variance",
            Statistic.VARIANCE,
            columns=("x2",),
            where=cmp(">", -DBL_MAX, "x2"),
        ),
        Case("where_in_red_count", Statistic.COUNT, columns=(), where=isin("red")),
        Case("where_in_red_blue_mean", Statistic.MEAN, columns=NUMERIC, where=isin("red", "blue")),
        Case("where_in_undeclared", Statistic.COUNT, columns=(), where=isin("purple")),
        Case("where_in_on_numeric", Statistic.COUNT, columns=(), where=isin("1", column="x1")),
        Case("where_cmp_on_categorical", Statistic.COUNT, columns=(), where=cmp("<", 1, "g")),
        Case(
            "where_and_or",
            Statistic.SUM,
            columns=NUMERIC,
            where=Condition(
                Op.OR,
                children=(
                    Condition(Op.AND, children=(isin("yes", column="h"), cmp(">", 1e300))),
                    cmp("<", -1e300, "x2"),
                ),
            ),
        ),
        Case(
            "where_strict_exact_count",
            Statistic.COUNT,
            dataset=STRICT,
            columns=(),
            where=isin("red"),
        ),
    ]
    return cases


def _group_cases() -> list[Case]:
    return [
        Case("group_g_mean", Statistic.MEAN, columns=NUMERIC, group_by=(G,)),
        Case("group_g_h_count", Statistic.COUNT, columns=(), group_by=(G, H)),
        Case("group_g_variance_huge", Statistic.VARIANCE, bounds=HUGE, frac_bits=0, group_by=(G,)),
        Case(
            "group_bins_extremes_sum",
            Statistic.SUM,
            columns=("x2",),
            group_by=(binned(-1e300, -1e-300, 0.0, 1e-300, 1e300),),
        ),
        Case(
            "group_bins_dblmax_count",
            Statistic.COUNT,
            columns=(),
            group_by=(binned(-DBL_MAX, 0.0, DBL_MAX),),
        ),
        Case(
            "group_bins_sane_clamped_mean",
            Statistic.MEAN,
            columns=("x2",),
            group_by=(binned(0.0, 50.0, 100.0),),
        ),
        Case(
            "group_bins_and_g_count",
            Statistic.COUNT,
            columns=(),
            group_by=(binned(-1e300, 0.0, 1e300), G),
            where=cmp("<", DBL_MAX, "x2"),
        ),
        Case(
            "group_histogram_by_h",
            Statistic.HISTOGRAM,
            edges=tuple(np.linspace(0.0, 100.0, 9).tolist()),
            group_by=(H,),
        ),
        Case(
            "group_over_max_bins",
            Statistic.HISTOGRAM,
            edges=tuple(np.linspace(0.0, 100.0, 33).tolist()),
            group_by=(G,),
        ),
        Case(
            "group_undeclared_category",
            Statistic.COUNT,
            columns=(),
            group_by=(GroupKey("g", categories=("red", "purple")),),
        ),
        Case("group_strict_exact_mean", Statistic.MEAN, dataset=STRICT, group_by=(G,)),
    ]


FINE = tuple(np.linspace(0.0, 100.0, MAX_BINS + 1).tolist())


def _analysis_cases() -> list[Case]:
    return [
        Case("covariance", Statistic.COVARIANCE, columns=NUMERIC),
        Case("covariance_wide_f8", Statistic.COVARIANCE, columns=NUMERIC, bounds=WIDE, frac_bits=8),
        Case("covariance_huge", Statistic.COVARIANCE, columns=NUMERIC, bounds=HUGE, frac_bits=0),
        Case("covariance_strict_ungrouped", Statistic.COVARIANCE, dataset=STRICT, columns=NUMERIC),
        # Products of clamped extreme rows reach the term bound: saturated, not failed.
        Case(
            "covariance_1e6_f8",
            Statistic.COVARIANCE,
            columns=NUMERIC,
            bounds=(-1e6, 1e6),
            frac_bits=8,
            group_by=(H,),
        ),
        Case("correlation", Statistic.CORRELATION, columns=NUMERIC),
        Case(
            "correlation_by_h_where",
            Statistic.CORRELATION,
            columns=NUMERIC,
            group_by=(H,),
            where=cmp(">", -1e300),
        ),
        Case("correlation_narrow", Statistic.CORRELATION, columns=NUMERIC, bounds=(0.0, 1e-9)),
        Case("contingency", Statistic.CONTINGENCY, columns=(), group_by=(G, H)),
        Case(
            "contingency_where",
            Statistic.CONTINGENCY,
            columns=(),
            group_by=(G, H),
            where=cmp("<", 1e300),
        ),
        Case(
            "contingency_bins",
            Statistic.CONTINGENCY,
            columns=(),
            group_by=(binned(-DBL_MAX, 1e-300, DBL_MAX), H),
        ),
        Case(
            "contingency_strict", Statistic.CONTINGENCY, dataset=STRICT, columns=(), group_by=(G, H)
        ),
        Case("ttest_by_h", Statistic.TTEST, columns=NUMERIC, group_by=(H,)),
        Case(
            "ttest_by_bins",
            Statistic.TTEST,
            columns=("x2",),
            group_by=(binned(-1e300, 0.0, 1e300),),
        ),
        Case("ttest_three_groups", Statistic.TTEST, group_by=(G,)),
        Case("quantile_median", Statistic.QUANTILE, edges=FINE, quantiles=(0.5,)),
        Case(
            "quantile_by_g",
            Statistic.QUANTILE,
            edges=tuple(np.linspace(0.0, 100.0, 17).tolist()),
            quantiles=(0.01, 0.5, 0.99),
            group_by=(G,),
        ),
        Case(
            "quantile_by_g_over_max_bins",  # 3 groups x 64 bins: over the cells cap
            Statistic.QUANTILE,
            edges=FINE,
            quantiles=(0.5,),
            group_by=(G,),
        ),
        Case(
            "quantile_dblmax_edges",
            Statistic.QUANTILE,
            bounds=(-DBL_MAX, DBL_MAX),
            edges=(-DBL_MAX, -1e-300, 0.0, 1e-300, DBL_MAX),
            quantiles=(0.01, 0.5, 0.99),
        ),
        Case(
            "quantile_over_max_bins",
            Statistic.QUANTILE,
            edges=tuple(np.linspace(0.0, 100.0, MAX_BINS + 2).tolist()),
            quantiles=(0.5,),
        ),
    ]


def _dp_cases() -> list[Case]:
    cases = []
    for noise, privacy in (("central", central()), ("distributed", distributed())):
        cases += [
            Case(f"dp_{noise}_covariance", Statistic.COVARIANCE, DP, NUMERIC, privacy=privacy),
            Case(
                f"dp_{noise}_correlation_by_g",
                Statistic.CORRELATION,
                DP,
                NUMERIC,
                group_by=(G,),
                privacy=privacy,
            ),
            Case(
                f"dp_{noise}_contingency",
                Statistic.CONTINGENCY,
                DP,
                (),
                group_by=(G, H),
                privacy=privacy,
            ),
            Case(f"dp_{noise}_ttest", Statistic.TTEST, DP, NUMERIC, group_by=(H,), privacy=privacy),
            Case(
                f"dp_{noise}_quantile",
                Statistic.QUANTILE,
                DP,
                edges=FINE,
                quantiles=(0.25, 0.5),
                privacy=privacy,
            ),
            Case(
                f"dp_{noise}_mean_where_by_bins",
                Statistic.MEAN,
                DP,
                NUMERIC,
                where=isin("red", "green"),
                group_by=(binned(-1e300, 1e-300, 1e300),),
                privacy=privacy,
            ),
        ]
    cases += [
        Case(
            "dp_central_count_where_at_dblmax",
            Statistic.COUNT,
            DP,
            (),
            where=cmp("==", DBL_MAX),
            privacy=central(),
        ),
        Case(
            "dp_central_quantile_by_h_huge",
            Statistic.QUANTILE,
            DP,
            bounds=(-1e300, 1e300),
            edges=tuple(np.linspace(-1e300, 1e300, 17).tolist()),
            quantiles=(0.5,),
            group_by=(H,),
            privacy=central(),
        ),
        Case(
            "dp_laplace_contingency",
            Statistic.CONTINGENCY,
            DP,
            (),
            group_by=(G, H),
            privacy=central(delta=0.0),
        ),
        Case("exact_covariance_on_dp_only", Statistic.COVARIANCE, DP, NUMERIC),
    ]
    return cases


CASES = _where_cases() + _group_cases() + _analysis_cases() + _dp_cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, cert_dir: Path) -> Iterator[World]:
    world = World(tmp_path_factory.mktemp("frames"), cert_dir)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def source_world(world: World, request: pytest.FixtureRequest, source: str) -> World:
    """The world, with PostgreSQL loaded when this case needs it (the ``postgres`` fixture
    skips without server binaries, and fails when CI=true)."""
    if source == "postgres":
        server = request.getfixturevalue("postgres")
        world.load_postgres(server.dsn)
    return world


#: Cases refused from the spec and the config alone (on every neighbour and source); every
#: other case must answer its one round, so the comparison is not between two refusals.
REFUSED = frozenset(
    {
        "where_in_undeclared",
        "where_in_on_numeric",
        "where_cmp_on_categorical",
        "where_strict_exact_count",
        "group_g_variance_huge",
        "group_over_max_bins",
        "group_undeclared_category",
        "group_strict_exact_mean",
        "covariance_wide_f8",
        "covariance_huge",
        "contingency_strict",
        "ttest_three_groups",
        "quantile_by_g_over_max_bins",
        "quantile_over_max_bins",
        "exact_covariance_on_dp_only",
    }
)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_is_answered_unless_refused_by_policy(world: World, case: Case) -> None:
    outcome = world.outcome(case, "csv", ORIGINAL)
    answered = dict(x for x in outcome if len(x) == 2).get("rounds answered", 0)
    assert answered == (0 if case.name in REFUSED else 1), outcome


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_outcome_is_the_same_on_neighbours_and_sources(
    source_world: World, case: Case, source: str
) -> None:
    """One case, one source: every neighbour gives the original's outcome, and the original
    gives the CSV original's outcome."""
    expected = source_world.outcome(case, source, ORIGINAL)
    differ = {
        n: source_world.outcome(case, source, n)
        for n in NEIGHBOURS
        if source_world.outcome(case, source, n) != expected
    }
    assert not differ, f"{case.name} on {source}: expected {expected}, got {differ}"
    if source != "csv":
        assert expected == source_world.outcome(case, "csv", ORIGINAL), (
            f"{case.name}: {source} differs from csv"
        )
