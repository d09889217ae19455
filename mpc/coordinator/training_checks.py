"""Checks and reports of a training run: divergence, separation, and the DP outcome.

Split from :mod:`mpc.coordinator.training` (which imports these helpers); all of them work on
public values only: the spec, the revealed loss curve and the model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np

from mpc import training as tr
from mpc.coordinator.jobs import UPPER_BOUND, JobRunner, NoiseOutcome
from mpc.errors import QueryError
from mpc.protocol.spec import JobSpec, Method
from mpc.ring import resolution
from mpc.stats.privacy import NoisePlan, plan_noise

#: Unregularised logistic weights (standardised) beyond this, still growing, mean separation.
SEPARATION_WEIGHT = 10.0


def _divergence_fix(spec: JobSpec, step: float) -> str:
    t = spec.training
    assert t is not None
    if t.model.value == "logistic" and t.l2 == 0:
        return (
            "the classes may be (quasi-)separable, so the unregularised weights grow without "
            "bound: add --l2 (e.g. 0.01)"
            + ("" if t.method is Method.NEWTON else f", or lower --lr (now {step:g})")
        )
    if t.method is Method.NEWTON:
        return "add --l2 (e.g. 0.01)"
    if t.lr > 0:
        return f"lower --lr (now {t.lr:g}), or omit --lr for an automatic safe step, or add --l2"
    return "add --l2 or set --clip"


def _diverged(
    spec: JobSpec,
    curve: list[dict[str, float]],
    step: float,
    gram: np.ndarray | None,
    scaling: tr.Scaling,
    at_bound: bool = False,
) -> str:
    t = spec.training
    assert t is not None
    best = min(curve, key=lambda c: c["loss"])
    last = curve[-1]
    stable = ""
    if t.method is Method.GD:
        bound = tr.curvature_bound(spec, scaling, gram)
        kind = "largest stable step" if gram is not None else "a provably stable step"
        stable = (
            f" (the {kind} for this data is about {2 / bound:.3g}; {1 / bound:.3g} is safe)"
            if gram is not None
            else f" ({kind} here is {1 / bound:.3g})"
        )
    if at_bound:
        what = (
            f"the mean per-example loss reached {last['loss']:.6g} in round "
            f"{int(last['round'])}, half its clamp {tr.loss_bound(spec):g}"
        )
    else:
        what = (
            f"the loss rose from {best['loss']:.6g} (round {int(best['round'])}) to "
            f"{last['loss']:.6g} (round {int(last['round'])})"
        )
    return (
        f"training diverged: {what} with step {step:g}{stable}; "
        f"{_divergence_fix(spec, step)}. No model was returned"
    )


def _check_not_worse(
    spec: JobSpec,
    curve: list[dict[str, float]],
    step: float,
    gram: np.ndarray | None,
    scaling: tr.Scaling,
) -> None:
    """Refuse to return a model whose loss ends rising, 5% above the best seen (diverging)."""
    if len(curve) < 2:
        return
    last = curve[-1]["loss"]
    best = min(c["loss"] for c in curve)
    if last > best * 1.05 + 1e-12 and last > curve[-2]["loss"]:
        raise QueryError(_diverged(spec, curve, step, gram, scaling))


def _separation_warnings(
    spec: JobSpec,
    curve: list[dict[str, float]],
    evaluation: dict[str, float | None] | None,
    w: np.ndarray,
) -> list[str]:
    t = spec.training
    assert t is not None
    if t.model.value != "logistic" or t.l2 > 0 or t.method is Method.CLOSED_FORM:
        return []
    accuracy = (evaluation or {}).get("train_accuracy")
    if accuracy is not None and accuracy >= 1.0:
        return [
            "complete separation: the model classifies every training row correctly, so the "
            "unregularised logistic weights have no finite optimum and grow with every round "
            "(their values, and the probabilities, are not meaningful); add --l2"
        ]
    norms = [c.get("weight_norm", 0.0) for c in curve[-4:]]
    growing = len(norms) >= 4 and all(b > a for a, b in itertools.pairwise(norms))
    if growing and float(np.max(np.abs(w[1:]), initial=0.0)) > SEPARATION_WEIGHT:
        return [
            "quasi-separation likely: standardised logistic weights above "
            f"{SEPARATION_WEIGHT:g} still grow every round while the loss falls; some "
            "coefficients have no finite optimum; add --l2"
        ]
    return []


def _noise_outcome(
    spec: JobSpec,
    plan: NoisePlan,
    scaling: tr.Scaling,
    curve: list[dict[str, float]],
    step: float,
    start_round: int,
) -> NoiseOutcome:
    """The noise in the released coefficients (original scale): an upper bound on sigma.

    Each gradient round adds ``lr Z / n`` to the standardised weights (Z: the gradient sum's
    noise, iid per coordinate; n: the expected batch size, estimated from the noisy counts;
    lr: that round's step, from the curve). Summed over the rounds in the model *without*
    the contraction of the gradient steps, the noise has standard deviation
    ``sqrt(sum_r lr_r^2) sigma_Z / n`` per coordinate: to first
    order, an upper bound whenever each step is non-expansive (``lr`` at most ``2/L``), and
    ignoring the bias that clipping adds (not noise). Rounds of earlier runs (a resumed job)
    are counted at the noise of the whole run as first planned, which per round is the
    largest. Mapped to the original scale: ``coef_j = w_j / scale_j``, the intercept
    ``w_0 - sum_j w_j mean_j / scale_j``.
    """
    t = spec.training
    assert t is not None
    privacy = plan.privacy
    unit = resolution(spec.frac_bits)
    sd_now = math.sqrt(float(plan.total_variance(plan.groups[0]))) * unit
    sd_before = sd_now
    if start_round:
        first = replace(spec, training=replace(t, rounds=start_round + t.rounds, start_round=0))
        first_plan = plan_noise(first)
        if first_plan is not None:
            sd_before = max(
                sd_now,
                math.sqrt(float(first_plan.total_variance(first_plan.groups[0])))
                * resolution(first.frac_bits),
            )
    rows = [float(point["rows"]) for point in curve if "rows" in point]
    n = max(1.0, sum(rows) / len(rows)) if rows else float(spec.total_max_rows)
    variance = 0.0
    for point in curve:  # one entry per noisy gradient round in the model
        lr = float(point.get("lr", step or t.lr))
        sd = sd_before if point.get("round", start_round + 1) <= start_round else sd_now
        variance += (lr * sd) ** 2
    sd_w = math.sqrt(variance) / n
    ratios = np.asarray(scaling.mean, dtype=np.float64) / np.asarray(
        scaling.scale, dtype=np.float64
    )
    sigmas = (
        sd_w * math.sqrt(1.0 + float(np.dot(ratios, ratios))),
        *(sd_w / float(v) for v in np.asarray(scaling.scale, dtype=np.float64)),
    )
    return NoiseOutcome(
        noise=privacy.noise.value,
        epsilon=privacy.epsilon,
        delta=privacy.delta,
        epsilon_spent=float(plan.cost.epsilon(privacy.delta)),
        rho_spent=float(plan.cost.rho),
        sigma=sigmas,
        error_bound_95=tuple(1.96 * v for v in sigmas),
        error_kind=(UPPER_BOUND,) * len(sigmas),
    )


def _run_privacy(
    runner: JobRunner,
    spec: JobSpec,
    plan: NoisePlan | None,
    noise: NoiseOutcome,
    prior_jobs: list[str],
) -> dict[str, object]:
    """The model's privacy: what *all* its runs spent (this job's charge plus the earlier
    runs' charges, read from the coordinator's ledger), and this run's own."""
    data = noise.to_json()
    if plan is None or not prior_jobs:
        return data
    data["epsilon_spent_run"] = noise.epsilon_spent
    data["rho_spent_run"] = noise.rho_spent
    data["runs"] = [*prior_jobs, spec.job_id]
    ledger = runner._ledger
    earlier = [ledger.charged(spec.dataset, job) for job in prior_jobs] if ledger else []
    if ledger is None or any(cost is None for cost in earlier):
        data["total_unknown"] = "an earlier run's charge is not in the coordinator's ledger"
        return data
    total = plan.cost
    for cost in earlier:
        assert cost is not None
        total = total + cost
    data["epsilon_spent"] = float(total.epsilon(plan.privacy.delta))
    data["rho_spent"] = float(total.rho)
    return data
