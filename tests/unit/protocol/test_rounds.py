"""The round schedule fixed by the signed spec, as each party enforces it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mpc.errors import ProtocolError
from mpc.protocol.rounds import (
    KIND_EVAL,
    KIND_GRAM,
    KIND_STEP,
    RoundTracker,
    round_kind,
    schedule_of,
)
from mpc.protocol.spec import (
    ColumnBound,
    JobSpec,
    Method,
    Model,
    NoiseMode,
    Participant,
    PrivacySpec,
    Standardise,
    Statistic,
    TrainingSpec,
)

PARTIES = (Participant("a", 10), Participant("b", 10))
COLUMNS = (ColumnBound("x", 0, 1), ColumnBound("y", 0, 1))


def _train(**kw: object) -> JobSpec:
    training = TrainingSpec(Model.LOGISTIC, "y", rounds=2, **kw)  # type: ignore[arg-type]
    privacy = None
    if training.standardise is Standardise.BOUNDS and training.clip:
        privacy = PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, 1)
    return JobSpec(
        "t", Statistic.TRAIN, "d", COLUMNS, 16, PARTIES, privacy=privacy, training=training
    )


def test_a_query_has_exactly_one_round_without_input() -> None:
    spec = JobSpec("q", Statistic.SUM, "d", COLUMNS[:1], 16, PARTIES)
    assert schedule_of(spec).total_rounds == 1
    tracker = RoundTracker(spec)
    with pytest.raises(ProtocolError, match="takes no round input"):
        tracker.admit(0, KIND_STEP)
    tracker.admit(0, 0)
    for round_id in (0, 1, 2):
        with pytest.raises(ProtocolError, match="round"):
            tracker.admit(round_id, 0)
    assert tracker.answered == 1


def test_training_schedule_gram_steps_then_one_evaluation() -> None:
    spec = _train()
    schedule = schedule_of(spec)
    assert (schedule.gram, schedule.steps, schedule.evaluation, schedule.last_round) == (
        True,
        2,
        True,
        3,
    )
    tracker = RoundTracker(spec)
    with pytest.raises(ProtocolError, match="round 0 must be the moments round"):
        tracker.admit(0, KIND_STEP)
    tracker.admit(0, KIND_GRAM)
    with pytest.raises(ProtocolError, match="not in this job's schedule"):
        tracker.admit(1, KIND_GRAM)
    tracker.admit(1, KIND_STEP)
    tracker.admit(2, KIND_STEP)
    with pytest.raises(ProtocolError, match="all 2 gradient rounds"):
        tracker.admit(3, KIND_STEP)
    tracker.admit(3, KIND_EVAL)
    with pytest.raises(ProtocolError, match="every round of this job was answered"):
        tracker.admit(4, KIND_STEP)
    assert tracker.answered == 4


def test_early_stop_may_evaluate_early_but_never_twice() -> None:
    tracker = RoundTracker(_train())
    tracker.admit(0, KIND_GRAM)
    tracker.admit(1, KIND_STEP)
    tracker.admit(2, KIND_EVAL)
    with pytest.raises(ProtocolError):
        tracker.admit(3, KIND_EVAL)


def test_dp_bounds_resumed_and_closed_form_schedules() -> None:
    dp = schedule_of(_train(standardise=Standardise.BOUNDS, clip=1.0))
    assert (dp.gram, dp.steps, dp.evaluation) == (False, 2, False)
    resumed = schedule_of(_train(start_round=5))
    assert (resumed.gram, resumed.steps, resumed.evaluation) == (False, 2, True)
    closed = _train()
    closed = replace(
        closed,
        training=TrainingSpec(Model.LINEAR, "y", rounds=1, method=Method.CLOSED_FORM),
    )
    schedule = schedule_of(closed)
    assert (schedule.gram, schedule.steps, schedule.evaluation) == (True, 0, True)
    tracker = RoundTracker(_train(standardise=Standardise.BOUNDS, clip=1.0))
    with pytest.raises(ProtocolError, match="no evaluation round"):
        tracker.admit(0, KIND_EVAL)


def test_round_kind_reads_only_an_integral_first_word() -> None:
    assert round_kind(None) == 0
    assert round_kind(np.array([])) == 0
    assert round_kind(np.array([2.0, 5.0])) == KIND_STEP
    assert round_kind(np.array([2.5])) == -1
    assert round_kind(np.array([np.nan])) == -1
