"""Attacks by a curious coordinator (issue 8 classes 3, 4, 5 and 6, and class 2 at the party).

The adversary holds the coordinator's certificate and drives the party RPCs itself: it
writes the job spec, relays the signed key offers, picks round ids and round inputs, and adds
the masked shares mod 2^64 itself. Parties must refuse from the signed spec alone, or answer
with something that reveals nothing (a uniformly random aggregate).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mpc import training as tr
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    Model,
    NoiseMode,
    Participant,
    PrivacySpec,
    Standardise,
    Statistic,
    TrainingSpec,
)
from mpc.stats import definition

from .conftest import (
    PARTIES,
    PEOPLE_BOUNDS,
    PEOPLE_COLUMNS,
    ClusterFactory,
    Dataset,
    FakeCoordinator,
    SecurityCluster,
    normalise,
    people_rows,
    write_csv,
)

pytestmark = pytest.mark.integration

MAX_ROWS = 200
ROWS = {pid: 30 + 3 * index for index, pid in enumerate(PARTIES)}
EXTREME = 1e300  # party c's one extreme value of column "big" in "people" (5.0 in "people_nb")
DP = PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-5, len(PARTIES) - 1)


def _build(root: Path) -> dict[str, dict[str, Dataset]]:
    out: dict[str, dict[str, Dataset]] = {}
    for index, pid in enumerate(PARTIES):
        rows = people_rows(index, ROWS[pid])
        neighbour = rows.copy()
        if pid == "c":
            rows[0, 3], neighbour[0, 3] = EXTREME, 5.0
        people = write_csv(root / pid / "people.csv", PEOPLE_COLUMNS, rows)
        people_nb = write_csv(root / pid / "people_nb.csv", PEOPLE_COLUMNS, neighbour)
        out[pid] = {
            "people": Dataset(
                people, MAX_ROWS, PEOPLE_BOUNDS, participation="cohort", cohort=PARTIES
            ),
            "people_nb": Dataset(
                people_nb, MAX_ROWS, PEOPLE_BOUNDS, participation="cohort", cohort=PARTIES
            ),
            "people_dp": Dataset(
                people, MAX_ROWS, PEOPLE_BOUNDS, budget=(1000.0, 1e-3), participation="dp-only"
            ),
        }
    return out


@pytest.fixture(scope="module")
def cluster(
    cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> SecurityCluster:
    # No coordinator process: the adversary is the coordinator.
    return cluster_factory(_build(tmp_path_factory.mktemp("fake-data")), coordinator=False)


@pytest.fixture(scope="module")
def fake(cluster: SecurityCluster) -> Iterator[FakeCoordinator]:
    coordinator = FakeCoordinator(cluster)
    try:
        yield coordinator
    finally:
        coordinator.close()


def _spec(
    statistic: Statistic,
    dataset: str,
    columns: Sequence[ColumnBound],
    frac_bits: int = 16,
    privacy: PrivacySpec | None = None,
    training: TrainingSpec | None = None,
) -> JobSpec:
    return JobSpec(
        job_id=f"fake-{statistic.value}-{uuid.uuid4().hex[:12]}",
        statistic=statistic,
        dataset=dataset,
        columns=tuple(columns),
        frac_bits=frac_bits,
        participants=tuple(Participant(pid, MAX_ROWS) for pid in PARTIES),
        privacy=privacy,
        training=training,
    )


def _run_query(fake: FakeCoordinator, spec: JobSpec) -> dict[str, str]:
    """Setup, key agreement and round 0 at every party: what each party did."""
    offers, refusals = fake.setup(spec)
    try:
        if refusals:
            return {
                pid: "refused at setup: " + normalise(refusals[pid], pid, spec.dataset)
                if pid in refusals
                else "accepted at setup"
                for pid in spec.party_ids
            }
        ordered = [offers[pid] for pid in spec.party_ids]
        for pid in spec.party_ids:
            fake.link(pid).agree(spec.job_id, ordered, fake.timeout)
        length = definition(spec.statistic).output_length(spec)
        outcome = fake.contribute(spec, 0, length)
        return {
            pid: "failed at round 0: " + normalise(outcome.errors[pid], pid, spec.dataset)
            if pid in outcome.errors
            else "answered"
            for pid in spec.party_ids
        }
    finally:
        fake.abort(spec)


def _all_refused_alike(outcomes: dict[str, str], needle: str) -> str:
    texts = set(outcomes.values())
    assert len(texts) == 1, f"parties did not all refuse alike: {outcomes}"
    (text,) = texts
    assert text.startswith("refused at setup: ") and needle in text, outcomes
    return text


# --- class 3: error oracle in encoding ----------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "bounds", "frac_bits"),
    [
        # A value above 2^47 (here party c's 1e300, clamped to 1e15) cannot be encoded.
        (Statistic.MEAN, (0.0, 1e15), 16),
        # The threshold placed by the centring: (x - 0)^2 * 2^30 wraps for |x| >= 92682.
        (Statistic.VARIANCE, (-1e5, 1e5), 30),
    ],
)
def test_wrapping_bounds_are_refused_by_every_party_from_the_spec(
    fake: FakeCoordinator, statistic: Statistic, bounds: tuple[float, float], frac_bits: int
) -> None:
    outcomes = {
        dataset: _run_query(
            fake, _spec(statistic, dataset, [ColumnBound("big", *bounds)], frac_bits)
        )
        for dataset in ("people", "people_nb")  # party c's value: extreme, or normal
    }
    assert outcomes["people"] == outcomes["people_nb"], f"an encoding oracle: {outcomes}"
    _all_refused_alike(outcomes["people"], "wrap")


def test_dp_mean_with_wrapping_bounds_is_refused_before_any_noise(fake: FakeCoordinator) -> None:
    # Centre 1e14: (x - 1e14) * 2^16 wraps only for x above ~2.4e14 (party c's clamped 1e300).
    spec = _spec(Statistic.MEAN, "people_dp", [ColumnBound("big", -1e14, 3e14)], privacy=DP)
    _all_refused_alike(_run_query(fake, spec), "wrap")


def test_mean_with_huge_but_provable_bounds_does_not_error_at_the_threshold(
    fake: FakeCoordinator, cluster: SecurityCluster
) -> None:
    total_rows = MAX_ROWS * len(PARTIES)
    largest = ((2**63 - 1) // total_rows) >> 12 << 12  # exactly representable as a float
    hi = largest / 2**16
    spec = _spec(Statistic.MEAN, "people", [ColumnBound("big", 0.0, hi)], frac_bits=16)
    fake.start(spec)
    try:
        outcome = fake.contribute(spec, 0, 2)
    finally:
        fake.abort(spec)
    assert not outcome.errors, outcome.errors
    values = outcome.decoded(16)
    column = np.concatenate(
        [
            np.loadtxt(cluster.sec_datasets[pid]["people"].path, delimiter=",", skiprows=1)[:, 3]
            for pid in PARTIES
        ]
    )
    assert values[1] == column.size
    np.testing.assert_allclose(values[0], np.clip(column, 0.0, hi).sum(), rtol=1e-12)


# --- class 4: DP noise averaged away ------------------------------------------------------


def _dp_count() -> JobSpec:
    return _spec(Statistic.COUNT, "people_dp", [], privacy=DP)


def test_dp_query_is_answered_for_round_0_only(fake: FakeCoordinator) -> None:
    spec = _dp_count()
    fake.start(spec)
    try:
        first = fake.contribute(spec, 0, 1)
        assert not first.errors, first.errors
        # Fresh noise in round 1, 2, ... would average the noise away under one charge.
        for round_id in (1, 2):
            again = fake.contribute(spec, round_id, 1)
            assert set(again.errors) == set(PARTIES), f"round {round_id} was answered: {again}"
            assert all("round" in text for text in again.errors.values()), again.errors
    finally:
        fake.abort(spec)


def test_dp_job_id_is_answered_once(fake: FakeCoordinator) -> None:
    spec = _dp_count()
    fake.start(spec)
    assert not fake.contribute(spec, 0, 1).errors
    fake.abort(spec)
    offers, refusals = fake.setup(spec)  # the same job id again: a fresh session
    fake.abort(spec)
    assert set(refusals) == set(PARTIES), f"set up again at {sorted(offers)}"
    # Refused in memory ("already set up") or by the ledger ("already charged").
    assert all("already" in text for text in refusals.values()), refusals


def test_dp_job_id_is_answered_once_even_after_a_restart(
    fake: FakeCoordinator, cluster: SecurityCluster
) -> None:
    spec = _dp_count()
    fake.start(spec)
    assert not fake.contribute(spec, 0, 1).errors
    fake.abort(spec)
    cluster.restart_party("c")
    fake.reconnect("c")
    _, refusals = fake.setup(spec)
    fake.abort(spec)
    assert "c" in refusals, "party c set the job up again after its restart"
    assert "already charged" in refusals["c"], refusals
    # The restarted party still works for a new job.
    fresh = _dp_count()
    fake.start(fresh)
    try:
        assert not fake.contribute(fresh, 0, 1).errors
    finally:
        fake.abort(fresh)


# --- class 5: training equivocation and the round schedule --------------------------------


def _training_spec(rounds: int) -> JobSpec:
    training = TrainingSpec(
        model=Model.LINEAR,
        label="score",
        rounds=rounds,
        lr=0.5,
        clip=1.0,
        standardise=Standardise.BOUNDS,
    )
    columns = [ColumnBound("age", 0.0, 120.0), ColumnBound("score", -10.0, 10.0)]
    return _spec(Statistic.TRAIN, "people", columns, training=training)


def _step(spec: JobSpec, weights: Sequence[float]) -> np.ndarray:
    return tr.round_input(tr.KIND_STEP, tr.bounds_scaling(spec), np.asarray(weights, dtype=float))


def test_equivocated_round_inputs_yield_a_random_aggregate(fake: FakeCoordinator) -> None:
    spec = _training_spec(rounds=2)
    p = tr.shape(spec).p
    length = tr.step_length(spec)
    zero, e1 = _step(spec, [0.0] * p), _step(spec, [0.0, 1.0])
    fake.start(spec)
    try:
        honest = fake.contribute(spec, 0, length, zero)
        assert honest.decoded(16)[p] == sum(ROWS.values()), "the honest round is not exact"
        # w = 0 to a and b, w = e1 to c: differencing with the honest round would give c's
        # gradient at e1, unless the masks no longer cancel.
        forked = fake.contribute(spec, 1, length, {"a": zero, "b": zero, "c": e1})
    finally:
        fake.abort(spec)
    assert not forked.errors, forked.errors
    values = forked.decoded(16)
    assert values[p] != sum(ROWS.values()), f"masks cancelled: exact aggregate {values}"
    assert np.max(np.abs(values)) > 1e6, f"masks cancelled: {values}"


def test_training_round_schedule_is_fixed_by_the_signed_spec(fake: FakeCoordinator) -> None:
    spec = _training_spec(rounds=1)
    zero_step = _step(spec, [0.0, 0.0])
    length = tr.step_length(spec)
    fake.start(spec)
    try:
        assert not fake.contribute(spec, 0, length, zero_step).errors
        second = fake.contribute(spec, 1, length, zero_step)  # a second gradient round
    finally:
        fake.abort(spec)
    assert set(second.errors) == set(PARTIES), f"a second STEP round was answered: {second}"
    assert all("round" in text for text in second.errors.values()), second.errors

    spec = _training_spec(rounds=1)
    fake.start(spec)
    try:
        assert not fake.contribute(spec, 0, length, _step(spec, [0.0, 0.0])).errors
        evaluation = tr.round_input(tr.KIND_EVAL, tr.bounds_scaling(spec), np.zeros(2))
        assert not fake.contribute(spec, 1, tr.EVAL_LENGTH, evaluation).errors
        past = [
            fake.contribute(spec, 2, length, _step(spec, [0.0, 0.0])),
            fake.contribute(spec, 3, tr.EVAL_LENGTH, evaluation),
        ]
    finally:
        fake.abort(spec)
    for outcome in past:
        assert set(outcome.errors) == set(PARTIES), f"answered past the schedule: {outcome}"
        assert all("round" in text for text in outcome.errors.values()), outcome.errors


def test_training_at_the_weight_limit_is_no_oracle_for_an_extreme_row(
    fake: FakeCoordinator,
) -> None:
    """Class 2 at the party: the largest weights a party accepts, features unscaled, and one
    row at 1e300 (people) or 5 (people_nb) at party c: every party answers in both."""
    training = TrainingSpec(
        model=Model.LINEAR,
        label="score",
        rounds=1,
        clip=1.0,
        standardise=Standardise.NONE,
    )
    columns = [ColumnBound("big", -1e300, 1e300), ColumnBound("score", -10.0, 10.0)]
    outcomes = {}
    for dataset in ("people", "people_nb"):
        spec = _spec(Statistic.TRAIN, dataset, columns, training=training)
        fake.start(spec)
        try:
            outcome = fake.contribute(spec, 0, tr.step_length(spec), _step(spec, [1e6, 1e6]))
        finally:
            fake.abort(spec)
        outcomes[dataset] = {pid: normalise(t, pid, dataset) for pid, t in outcome.errors.items()}
    assert outcomes == {"people": {}, "people_nb": {}}, f"an overflow oracle: {outcomes}"


# --- class 6: noise shrunk by the coordinator ---------------------------------------------


@pytest.mark.parametrize("colluders", [0, 1])
def test_distributed_noise_for_too_few_colluders_is_refused(
    fake: FakeCoordinator, colluders: int
) -> None:
    privacy = PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-5, colluders)
    spec = _spec(Statistic.SUM, "people_dp", [ColumnBound("age", 0.0, 120.0)], privacy=privacy)
    offers, refusals = fake.setup(spec)
    fake.abort(spec)
    assert set(refusals) == set(PARTIES), f"accepted {colluders} colluders at {sorted(offers)}"
    assert all("colluders" in text for text in refusals.values()), refusals


def test_distributed_noise_for_n_minus_1_colluders_is_accepted(fake: FakeCoordinator) -> None:
    spec = _spec(Statistic.SUM, "people_dp", [ColumnBound("age", 0.0, 120.0)], privacy=DP)
    assert set(_run_query(fake, spec).values()) == {"answered"}
