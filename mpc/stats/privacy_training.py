"""Noise plans of training jobs: every gradient round noised alike, the cost over all rounds.

Pure, like :mod:`mpc.stats.privacy` (which calls :func:`_plan_training` from
:func:`mpc.stats.privacy.plan_noise`); the privacy argument is in :func:`_plan_training`.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import isqrt

from mpc import dp
from mpc.errors import QueryError
from mpc.protocol.spec import ColumnBound, PrivacySpec, TrainingSpec
from mpc.stats.privacy import NoiseGroup, NoisePlan, _calibrate, _exact

#: zCDP budget split of one training round: clipped gradient sum, row count, loss sum.
TRAIN_SHARES = (Fraction(8, 10), Fraction(1, 10), Fraction(1, 10))


@functools.lru_cache(maxsize=128)
def _plan_training(
    columns: tuple[ColumnBound, ...],
    frac_bits: int,
    n: int,
    privacy: PrivacySpec,
    training: TrainingSpec,
) -> NoisePlan:
    """Every gradient round of a training job noised alike; the cost is all its rounds.

    Sensitivities per round (add/remove one row, enforced by every honest party): the sum of
    per-example gradients clipped to norm C before encoding, ``ceil(C 2^f + sqrt(p)/2)``
    (:func:`mpc.dp.clipped_sum_sensitivity` with the rounding slack); the count ``2^f``; the
    loss sum, losses clamped to ``[0, DP_LOSS_BOUND]``. Full-batch rounds compose in zCDP
    (``rounds x rho_round``); Poisson-subsampled rounds (``batch_rate = q``) are charged as an
    RDP curve (:meth:`mpc.dp.PrivacyCost.poisson_subsampled`), rho_round chosen by bisection so
    that the whole run meets (epsilon, delta).
    """
    from mpc.training import DP_LOSS_BOUND

    if privacy.delta == 0:
        raise QueryError("differentially private training needs delta > 0 (discrete Gaussian)")
    p = len(columns)  # d features + intercept
    f = frac_bits
    g_l2 = dp.clipped_sum_sensitivity(_exact(training.clip), f, dim=p)
    g_l1 = g_l2 * (isqrt(p - 1) + 1)
    one = dp.count_sensitivity(f)
    loss = dp.sum_sensitivity(Fraction(0), _exact(DP_LOSS_BOUND), f)
    rho_total = dp.rho_for_epsilon(privacy.epsilon, privacy.delta)

    def round_plan(rho_round: Fraction) -> tuple[list[NoiseGroup], dp.PrivacyCost]:
        groups, cost = [], dp.PrivacyCost()
        spec_groups = (
            ("gradient", 0, p, g_l2, g_l1),
            ("count", p, p + 1, one, one),
            ("loss", p + 1, p + 2, loss, loss),
        )
        for (name, start, stop, l2, l1), share in zip(spec_groups, TRAIN_SHARES, strict=True):
            group, group_cost = _calibrate(name, start, stop, l2, l1, rho_round * share, privacy, n)
            groups.append(group)
            cost = cost + group_cost
        return groups, cost

    rounds = training.rounds
    q = training.batch_rate
    if not 0 < q < 1:
        groups, per_round = round_plan(rho_total / rounds)
        total = dp.PrivacyCost(rho_units=per_round.rho_units * rounds)
        return NoisePlan(privacy, tuple(groups), n, total)

    def run_cost(rho_round: Fraction) -> dp.PrivacyCost:
        return dp.PrivacyCost.poisson_subsampled(q, rho_round, rounds)

    lo: Fraction = rho_total / rounds
    hi: Fraction = Fraction(4) * rho_total / (Fraction(q) * Fraction(q) * rounds)
    for _ in range(40):
        mid = Fraction(float((lo + hi) / 2))  # keep the fractions short
        if run_cost(mid).epsilon(privacy.delta) <= privacy.epsilon:
            lo = mid
        else:
            hi = mid
    groups, per_round = round_plan(lo)
    return NoisePlan(privacy, tuple(groups), n, run_cost(per_round.rho))


__all__ = ["TRAIN_SHARES"]
