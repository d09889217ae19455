from __future__ import annotations

import pytest

from mpc.errors import ConfigError, QueryError
from mpc.protocol.spec import ColumnBound, JobSpec, Participant, Statistic


def _spec(**changes: object) -> JobSpec:
    base: dict[str, object] = {
        "job_id": "job-1",
        "statistic": Statistic.SUM,
        "dataset": "health",
        "columns": (ColumnBound("age", 0, 120),),
        "frac_bits": 16,
        "participants": (Participant("a", 10), Participant("b", 10)),
    }
    base.update(changes)
    return JobSpec(**base)  # type: ignore[arg-type]


def test_digest_is_canonical() -> None:
    assert _spec().digest() == _spec(columns=(ColumnBound("age", 0.0, 120.0),)).digest()
    assert _spec().digest() != _spec(frac_bits=17).digest()
    assert _spec().digest() != _spec(job_id="job-2").digest()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"columns": (ColumnBound("age", 5, 1),)}, "lower bound 5 is above upper bound 1"),
        ({"columns": (ColumnBound("age", 0, float("inf")),)}, "finite"),
        ({"columns": ()}, "needs at least one column"),
        ({"participants": (Participant("a", 1),)}, "at least two"),
        ({"participants": (Participant("b", 1), Participant("a", 1))}, "sorted"),
        ({"participants": (Participant("a", 1), Participant("a", 1))}, "listed twice"),
        ({"frac_bits": 99}, "frac_bits"),
        ({"job_id": "bad id!"}, "job id"),
        ({"vector_length": 5}, "only for vector_sum"),
    ],
)
def test_invalid_specs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        _spec(**changes)


def test_party_ids_follow_dns_rules() -> None:
    with pytest.raises(ConfigError, match="invalid party id"):
        _spec(participants=(Participant("A_B", 1), Participant("b", 1)))


def test_bin_edges_spanning_more_than_dbl_max_are_valid() -> None:
    """Edges are compared, never subtracted: -DBL_MAX..DBL_MAX is a valid (if wide) range."""
    import sys
    import warnings

    from mpc.protocol.validation import check_bin_edges

    top = sys.float_info.max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_bin_edges((-top, 0.0, top))


def test_a_ttest_over_a_key_with_three_groups_says_how_to_pick_two() -> None:
    import pytest

    from mpc.errors import QueryError
    from mpc.protocol.frame import GroupKey
    from mpc.protocol.spec import Statistic
    from tests.unit.stats._analyses_fake import make_spec

    region = GroupKey("region", categories=("north", "south", "east"))
    with pytest.raises(QueryError, match=r"'region' has 3: pick two \(region=A,B\)"):
        make_spec(Statistic.TTEST, {"bmi": (10.0, 60.0)}, group_by=(region,))
