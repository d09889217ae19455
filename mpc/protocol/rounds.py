"""The round schedule a signed job spec fixes, and the party's tracker that enforces it.

Pure module. The number and the kinds of rounds a party answers are a function of the signed
spec alone, never of the coordinator's say-so or of the data:

* a query (every statistic but ``train``) has exactly one round, id 0, with no round input;
* a training job has round 0 of kind ``GRAM`` exactly when it standardises with secure
  moments or solves the closed form (and is not a resumed run), then at most ``rounds``
  gradient (``STEP``) rounds, then at most one ``EVAL`` round (never with DP), after which
  the party answers nothing more.

Round ids strictly increase and each is answered at most once (:class:`RoundTracker`), so a
DP job's charge, made for exactly this schedule, covers every release the party makes, and a
curious coordinator cannot collect extra noisy copies of one statistic to average the noise
away.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from mpc.errors import ProtocolError
from mpc.protocol.spec import JobSpec, Method, Standardise

#: Training round kinds (the first word of a training round's public input).
KIND_GRAM = 1
KIND_STEP = 2
KIND_EVAL = 3

#: Largest |model weight| a party accepts in a round input (standardised features are at most
#: 100 in magnitude, so a weight this large already means a diverged model).
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class RoundSchedule:
    """How many rounds of which kinds a job has (derived from the signed spec)."""

    training: bool
    gram: bool
    steps: int
    evaluation: bool

    @property
    def last_round(self) -> int:
        if not self.training:
            return 0
        return int(self.gram) + self.steps + int(self.evaluation) - 1

    @property
    def total_rounds(self) -> int:
        return self.last_round + 1


def schedule_of(spec: JobSpec) -> RoundSchedule:
    t = spec.training
    if t is None:
        return RoundSchedule(training=False, gram=False, steps=0, evaluation=False)
    gram = (
        t.standardise is Standardise.SECURE or t.method is Method.CLOSED_FORM
    ) and t.start_round == 0
    steps = 0 if t.method is Method.CLOSED_FORM else t.rounds
    return RoundSchedule(training=True, gram=gram, steps=steps, evaluation=spec.privacy is None)


def round_kind(round_input: np.ndarray | None) -> int:
    """The kind word of a training round input (0 when there is none)."""
    if round_input is None or round_input.size == 0:
        return 0
    first = float(round_input[0])
    return int(first) if math.isfinite(first) and first.is_integer() else -1


class RoundTracker:
    """One party's record of the rounds it answered in one job; refuses anything else."""

    def __init__(self, spec: JobSpec) -> None:
        self.job_id = spec.job_id
        self.schedule = schedule_of(spec)
        self._last: int | None = None
        self._steps = 0
        self._closed = False
        self._lock = threading.Lock()
        self.answered = 0

    def admit(self, round_id: int, kind: int) -> None:
        """Record round ``round_id`` of ``kind`` or raise :class:`ProtocolError` (public)."""
        s = self.schedule
        with self._lock:
            if self._closed:
                raise ProtocolError(f"job {self.job_id}: every round of this job was answered")
            if round_id < 0 or (self._last is not None and round_id <= self._last):
                raise ProtocolError(
                    f"job {self.job_id}: round {round_id} was already contributed or is invalid"
                )
            if round_id > s.last_round:
                raise ProtocolError(
                    f"job {self.job_id}: round {round_id} is past the last round "
                    f"({s.last_round}) that the signed spec allows"
                )
            if not s.training:
                if kind != 0:
                    raise ProtocolError(f"job {self.job_id}: a query round takes no round input")
                self._last, self._closed = round_id, True
                self.answered += 1
                return
            if s.gram and round_id == 0:
                if kind != KIND_GRAM:
                    raise ProtocolError(f"job {self.job_id}: round 0 must be the moments round")
                self._last = round_id
                self.answered += 1
                return
            if kind == KIND_STEP:
                if self._steps >= s.steps:
                    raise ProtocolError(
                        f"job {self.job_id}: all {s.steps} gradient rounds the signed spec "
                        "allows were contributed"
                    )
                self._steps += 1
            elif kind == KIND_EVAL:
                if not s.evaluation:
                    raise ProtocolError(f"job {self.job_id}: this job has no evaluation round")
                self._closed = True
            else:
                raise ProtocolError(
                    f"job {self.job_id}: round {round_id} of kind {kind} is not in this job's "
                    "schedule"
                )
            self._last = round_id
            self.answered += 1


__all__ = [
    "KIND_EVAL",
    "KIND_GRAM",
    "KIND_STEP",
    "MAX_WEIGHT",
    "RoundSchedule",
    "RoundTracker",
    "round_kind",
    "schedule_of",
]
