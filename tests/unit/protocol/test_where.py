"""The where-string parser, and where/group_by/quantiles in the signed query."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mpc.errors import QueryError
from mpc.protocol.frame import Condition, GroupKey, Op
from mpc.protocol.query import (
    Query,
    canonical_query,
    check_spec_matches,
    query_from_json,
    sign_query,
    verify_client,
)
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic
from mpc.protocol.where import check_frame_policy, format_where, parse_where
from tests.helpers import identity


def test_parses_nested_conditions() -> None:
    condition = parse_where("age >= 40 and (smoker in ('yes') or bmi < 30)")
    assert condition == Condition(
        Op.AND,
        children=(
            Condition(Op.GE, "age", value=40),
            Condition(
                Op.OR,
                children=(
                    Condition(Op.IN, "smoker", categories=("yes",)),
                    Condition(Op.LT, "bmi", value=30),
                ),
            ),
        ),
    )


def test_precedence_and_flattening() -> None:
    condition = parse_where("a < 1 or b > 2 and c != 3 or d <= -4.5e1")
    assert condition.op is Op.OR
    assert [c.op for c in condition.children] == [Op.LT, Op.AND, Op.LE]
    assert condition.children[2].value == -45.0
    flat = parse_where("a < 1 and b < 2 and (c < 3 and d < 4)")
    assert flat.op is Op.AND and len(flat.children) == 4


def test_equality_with_a_string_is_membership() -> None:
    assert parse_where('smoker == "no"') == Condition(Op.IN, "smoker", categories=("no",))
    assert parse_where("smoker IN ('a', 'b',)") == Condition(Op.IN, "smoker", categories=("a", "b"))
    assert parse_where("`blood pressure` = 120") == Condition(Op.EQ, "blood pressure", value=120)


@pytest.mark.parametrize(
    ("text", "position", "what"),
    [
        ("age >=", 6, "a number"),
        ("age >= 40 and", 13, "a column name"),
        ("(age < 3", 8, "')'"),
        ("age in (1)", 8, "a quoted category"),
        ("age < 3 bmi", 8, "'and', 'or' or the end"),
        ("age < 'x'", 6, "a number"),
    ],
)
def test_errors_name_the_position(text: str, position: int, what: str) -> None:
    with pytest.raises(QueryError, match=f"expected {re.escape(what)}.* at position {position}"):
        parse_where(text)


def test_bad_characters_and_empty() -> None:
    with pytest.raises(QueryError, match="unexpected character '~' at position 4"):
        parse_where("age ~ 3")
    with pytest.raises(QueryError, match="empty"):
        parse_where("  ")


def test_format_round_trips() -> None:
    for text in ["age >= 40 and (smoker in ('yes', 'no') or bmi < 30)", "`a b` != 1"]:
        condition = parse_where(text)
        assert parse_where(format_where(condition)) == condition


def test_frame_policy_texts() -> None:
    kw = dict(
        dataset="x",
        party="p",
        columns=["age"],
        bins=1,
        categories={"smoker": ("yes", "no")},
        max_bins=4,
    )
    with pytest.raises(QueryError, match="does not allow exact filtered or grouped releases"):
        check_frame_policy(
            dp=False, where=parse_where("age < 3"), group_by=(), exact_filters=False, **kw
        )  # type: ignore[arg-type]
    check_frame_policy(
        dp=True, where=parse_where("age < 3"), group_by=(), exact_filters=False, **kw
    )  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="5 cells"):
        check_frame_policy(
            dp=True,
            where=None,
            group_by=(GroupKey("age", edges=(0, 1, 2, 3, 4, 5)),),
            exact_filters=False,
            **kw,  # type: ignore[arg-type]
        )


QUERY = Query(
    Statistic.MEAN,
    "health",
    ("age",),
    where=parse_where("age >= 40 and smoker in ('yes')"),
    group_by=(GroupKey("smoker", categories=("yes", "no")), GroupKey("age", edges=(0, 50, 120))),
)


def test_canonical_json_round_trips_and_old_queries_are_unchanged() -> None:
    data = json.loads(canonical_query(QUERY))
    assert data["where"]["op"] == "and"
    assert data["group_by"][1] == {"column": "age", "edges": [0.0, 50.0, 120.0]}
    assert query_from_json(data) == QUERY
    plain = Query(Statistic.MEAN, "health", ("age",))
    assert set(json.loads(canonical_query(plain))) == {
        "statistic",
        "dataset",
        "columns",
        "bounds",
        "frac_bits",
        "parties",
        "noise",
        "epsilon",
        "delta",
    }


def _spec(**changes: object) -> JobSpec:
    base = dict(
        job_id="j1",
        statistic=Statistic.MEAN,
        dataset="health",
        columns=(ColumnBound("age", 0, 120),),
        frac_bits=16,
        participants=(Participant("a", 10), Participant("b", 10)),
        where=QUERY.where,
        group_by=QUERY.group_by,
    )
    base.update(changes)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_a_coordinator_cannot_alter_where_or_group_by(cert_dir: Path) -> None:
    client = identity(cert_dir, "client")
    auth = sign_query(client, QUERY)
    signed = verify_client(auth, client.ca_certificate)
    assert signed.query == QUERY
    check_spec_matches(_spec(), signed)
    with pytest.raises(QueryError, match=r"does not match .*\(where\)"):
        check_spec_matches(_spec(where=parse_where("age >= 0")), signed)
    with pytest.raises(QueryError, match=r"does not match .*\(where\)"):
        check_spec_matches(_spec(where=None), signed)
    with pytest.raises(QueryError, match=r"does not match .*\(group_by\)"):
        check_spec_matches(_spec(group_by=QUERY.group_by[:1]), signed)
    wider = (GroupKey("smoker", categories=("yes", "no", "maybe")), QUERY.group_by[1])
    with pytest.raises(QueryError, match=r"does not match .*\(group_by\)"):
        check_spec_matches(_spec(group_by=wider), signed)
    # The spec digest binds them too.
    other = _spec(where=parse_where("age >= 41 and smoker in ('yes')"))
    assert _spec().digest() != other.digest()
    assert _spec().digest() != _spec(group_by=wider).digest()


def test_query_validation() -> None:
    with pytest.raises(QueryError, match="takes no where"):
        Query(Statistic.VECTOR_SUM, "v", where=parse_where("a < 1")).validate()
    with pytest.raises(QueryError, match="listed twice"):
        Query(
            Statistic.COUNT,
            "h",
            group_by=(GroupKey("a", edges=(0, 1)), GroupKey("a", edges=(0, 2))),
        ).validate()
    with pytest.raises(QueryError, match="categories or bin edges"):
        Query(Statistic.COUNT, "h", group_by=(GroupKey("a"),)).validate()
    QUERY.validate()
