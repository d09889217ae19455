"""The coordinator's training loop: rounds of secure sums with the public model as input.

One job is one session (setup and key agreement once, fresh masks per round):

1. round 0, ``KIND_GRAM`` (secure standardisation or the closed form): means and variances
   of every feature over *all* parties' rows, so the model does not depend on how rows are
   split; with ``closed_form`` the ridge system is solved from this one round;
2. rounds 1..R, ``KIND_STEP``: the sum of clipped per-example gradients (and the Hessian for
   Newton) at the current model ``w_t``; then ``w_{t+1} = w_t - lr (g/n + l2 w)`` (intercept
   not penalised) or a Newton step; stop early when the gradient norm is below ``tol``;
3. ``KIND_EVAL`` (without DP): loss and accuracy or R^2/RMSE on training and hold-out rows.

After every completed round the model is handed to ``checkpoint`` (persisted in SQLite by the
service), so a run stopped by a failure keeps its last completed round and can be resumed.
With DP, every gradient round is noised (central or distributed) and the whole run is charged
to every ledger before round 1; a resumed run charges only the rounds it still plans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from mpc import training as tr
from mpc.coordinator.jobs import JobRunner, NoiseOutcome, Progress, Query
from mpc.coordinator.training_checks import (
    SEPARATION_WEIGHT as SEPARATION_WEIGHT,  # re-exported (it moved)
)
from mpc.coordinator.training_checks import (
    _check_not_worse,
    _diverged,
    _divergence_fix,
    _noise_outcome,
    _run_privacy,
    _separation_warnings,
)
from mpc.errors import MpcError, QueryError
from mpc.protocol.rounds import MAX_WEIGHT, schedule_of
from mpc.protocol.spec import ClientAuth, JobSpec, Method, Standardise
from mpc.ring import decode, resolution
from mpc.stats.privacy import NoisePlan, add_noise


@dataclass
class TrainState:
    """What survives a failure: the model after ``round`` completed rounds (JSON-able)."""

    round: int
    weights: list[float]
    scaling: dict[str, object]
    curve: list[dict[str, float]] = field(default_factory=list)
    #: The gradient step in use (0 in states written before it was stored).
    step: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: The earlier jobs whose rounds this model continues (oldest first), for the total
    #: privacy spent by all runs.
    prior_jobs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TrainState:
        return cls(
            round=int(data["round"]),  # type: ignore[call-overload]
            weights=[float(v) for v in data["weights"]],  # type: ignore[attr-defined]
            scaling=dict(data["scaling"]),  # type: ignore[call-overload]
            curve=list(data.get("curve", [])),  # type: ignore[call-overload]
            step=float(data.get("step", 0.0)),  # type: ignore[arg-type]
            warnings=[str(v) for v in data.get("warnings", [])],  # type: ignore[attr-defined]
            prior_jobs=[str(v) for v in data.get("prior_jobs", [])],  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class TrainOutcome:
    spec: JobSpec
    labels: list[str]
    values: np.ndarray  # intercept, coefficients on the original scale
    tolerance: float
    model: dict[str, object]
    noise: NoiseOutcome | None = None


class TrainingInterruptedError(MpcError):
    """A round failed; the model of the last completed round is kept."""


Checkpoint = Callable[[TrainState], None]


def _scaling_from_json(data: dict[str, object]) -> tr.Scaling:
    return tr.Scaling(
        Standardise(str(data["mode"])),
        np.asarray(data["mean"], dtype=np.float64),
        np.asarray(data["scale"], dtype=np.float64),
    )


#: The automatic ``frac_bits`` search stops here: each party encodes its float sums once, so
#: a decoded sum is off by at most ``parties * 2^-11`` (5e-4 per party) before it is divided
#: by the row count; with DP the noise is far larger. ``--frac-bits`` may go lower still.
MIN_AUTO_FRAC_BITS = 10
#: A noise-free run stops as diverged after this many consecutive rounds of rising loss.
RISING_ROUNDS = 3


def _build(
    runner: JobRunner,
    job_id: str,
    query: Query,
    schemas: dict[str, list[object]],
    client: ClientAuth | None = None,
) -> tuple[JobSpec, NoisePlan | None]:
    """The job spec with the most fractional bits whose headroom is proven (<= 30; DP <= 20)."""
    cap = 20 if query.epsilon else 30
    candidates = (
        [query.frac_bits]
        if query.frac_bits is not None
        else list(range(cap, MIN_AUTO_FRAC_BITS - 1, -1))
    )
    return runner.most_precise_spec(job_id, query, schemas, candidates, client)  # type: ignore[arg-type]


def train(
    runner: JobRunner,
    job_id: str,
    query: Query,
    progress: Progress,
    checkpoint: Checkpoint | None = None,
    resume: TrainState | None = None,
    client: ClientAuth | None = None,
) -> TrainOutcome:
    deadline = time.monotonic() + runner._job_timeout
    query.validate()
    t = query.training
    if t is None:
        raise QueryError("not a training query")
    selected = runner._select(query)
    progress("describe", f"asking {len(selected)} parties for their schemas", 0.02)
    schemas = runner._each(selected, lambda link: link.describe(runner._budget(deadline)), deadline)
    spec, plan = _build(runner, job_id, query, schemas, client)  # type: ignore[arg-type]
    prior_jobs = _prior_jobs(query, resume)
    if checkpoint is not None and prior_jobs:
        own_checkpoint = checkpoint

        def checkpoint(state: TrainState) -> None:
            own_checkpoint(replace(state, prior_jobs=prior_jobs))

    # Privacy first: the whole run (all planned rounds) is charged before round 1; the parties
    # charge their own ledgers at setup, before reading any data.
    runner._charge(spec, plan)
    links = runner.start_session(spec, progress, deadline)
    s = tr.shape(spec)
    f = spec.frac_bits
    total = t.start_round + t.rounds
    curve: list[dict[str, float]] = list(resume.curve) if resume else []
    done = t.start_round
    round_id = 0

    def collect(values: np.ndarray, length: int) -> np.ndarray:
        nonlocal round_id
        revealed = runner.collect_round(spec, links, round_id, length, deadline, values)
        round_id += 1
        if plan is not None and not plan.distributed:
            revealed = add_noise(revealed, plan.sample(revealed.size))
        return decode(revealed, f)

    stopped = "rounds"
    evaluation: dict[str, float | None] | None = None
    warnings: list[str] = list(resume.warnings) if resume else []
    step = 0.0
    # Without noise (no DP, no row sampling) gradient descent with a stable step lowers the
    # revealed loss every round: a rise beyond the fixed-point rounding means the step is too
    # large (or, for Newton, the problem is ill-posed).
    noise_free = plan is None and t.batch_rate == 0
    try:
        gram = None
        if resume is not None:
            scaling = _scaling_from_json(resume.scaling)
            w = np.asarray(resume.weights, dtype=np.float64)
            step = resume.step
        else:
            w = np.zeros(s.p)
            scaling = tr.bounds_scaling(spec)
            # The signed spec fixes whether round 0 is the moments round (parties enforce it).
            if schedule_of(spec).gram:
                progress("moments", "secure sums of the features' moments over all parties", 0.05)
                scaled = collect(tr.round_input(tr.KIND_GRAM), tr.gram_length(spec))
                gram = tr.raw_gram(spec, scaled)
                if t.standardise is Standardise.SECURE:
                    scaling, _ = tr.moments_scaling(s.d, gram)
                    warnings += tr.clamp_warnings(spec, scaling, gram)
        if step <= 0 or t.lr > 0:
            # lr 0 in the signed spec: the coordinator's own safe step (1 / curvature bound,
            # from the round-0 Gram when there is one); an explicit lr is used as given.
            step = tr.auto_step(spec, scaling, gram)
        if t.method is Method.CLOSED_FORM:
            assert gram is not None
            w, _ = tr.closed_form(gram, s.d, scaling, t.l2)
            done, stopped = total, "closed_form"
            if checkpoint:
                checkpoint(TrainState(done, w.tolist(), scaling.to_json(), curve, step, warnings))
        else:
            n_sum, n_count = 0.0, 0
            length = tr.step_length(spec)
            rising = 0
            previous: tuple[np.ndarray, np.ndarray, float] | None = None  # w, grad, loss
            for _ in range(t.rounds):
                started = time.perf_counter()
                try:
                    vals = collect(tr.round_input(tr.KIND_STEP, scaling, w), length)
                except MpcError as exc:
                    raise TrainingInterruptedError(
                        f"{exc}; training stopped after round {done} of {total}: the model of "
                        f"round {done} is kept (resume with --resume {job_id})"
                    ) from None
                n_round = float(vals[s.p])
                if plan is not None:
                    # Normalise by the expected batch size (the running mean of the noisy
                    # counts: post-processing), never by one round's realised count.
                    n_sum, n_count = n_sum + n_round, n_count + 1
                    n = max(1.0, n_sum / n_count)
                else:
                    n = n_round
                    if n < 0.5:
                        raise QueryError("no training rows at any party in this round")
                grad = tr.objective_gradient(vals[: s.p], n, t.l2, w)
                loss = tr.objective_value(float(vals[s.p + 1]), n, t.l2, w)
                norm = float(np.linalg.norm(grad))
                ms = 1000 * (time.perf_counter() - started)
                curve.append(
                    {
                        "round": done + 1,
                        "loss": loss,
                        "grad_norm": norm,
                        "rows": n_round,
                        "ms": ms,
                        "weight_norm": float(np.linalg.norm(w[1:])),
                    }
                )
                if noise_free and float(vals[s.p + 1]) / n >= 0.5 * tr.loss_bound(spec):
                    # A sane model stays far below the per-example loss clamp; at it, the
                    # clamps (and the clip) hide how far the model has diverged.
                    raise QueryError(_diverged(spec, curve, step, gram, scaling, at_bound=True))
                # Twice the worst rounding of a decoded loss, with a margin.
                slack = 1e-9 * abs(loss) + 4 * len(spec.party_ids) * resolution(f) / n
                rose = noise_free and previous is not None and loss > previous[2] + slack
                if rose and t.lr == 0 and t.method is Method.GD and previous is not None:
                    # Automatic step: backtrack to the previous model with half the step.
                    step /= 2
                    w = previous[0] - step * previous[1]
                    curve[-1]["rejected"] = 1.0
                else:
                    rising = rising + 1 if rose else 0
                    if rising >= RISING_ROUNDS:
                        raise QueryError(_diverged(spec, curve, step, gram, scaling))
                    if norm < t.tol:
                        stopped = "tol"
                        break
                    previous = (w, grad, loss)
                    if t.method is Method.NEWTON:
                        w = w - tr.newton_step(grad, vals[s.p + 2 :], n, t.l2)
                    else:
                        w = w - step * grad
                curve[-1]["lr"] = step
                if not np.all(np.isfinite(w)) or float(np.max(np.abs(w))) > MAX_WEIGHT:
                    # Parties refuse such a model anyway (a public check of the round input).
                    raise QueryError(
                        f"training diverged in round {done + 1}: a model weight exceeds "
                        f"{MAX_WEIGHT:g}; {_divergence_fix(spec, step)}"
                    )
                done += 1
                if checkpoint:
                    checkpoint(
                        TrainState(done, w.tolist(), scaling.to_json(), curve, step, warnings)
                    )
                progress(
                    "round",
                    f"round {done}/{total} loss {loss:.6g}",
                    0.1 + 0.8 * (done - t.start_round) / max(1, t.rounds),
                )
        if plan is None:
            progress("evaluate", "secure sums of the evaluation counts", 0.95)
            values = collect(tr.round_input(tr.KIND_EVAL, scaling, w), tr.EVAL_LENGTH)
            evaluation = tr.metrics(t.model, values)
        if noise_free and t.method is not Method.CLOSED_FORM:
            _check_not_worse(spec, curve, step, gram, scaling)
        warnings += _separation_warnings(spec, curve, evaluation, w)
    except BaseException:
        runner.close_session(spec, links, "job failed")
        raise
    runner.close_session(spec, links, "job finished")
    intercept, coef = tr.to_original(w, scaling)
    noise = (
        _noise_outcome(spec, plan, scaling, curve, step, t.start_round)
        if plan is not None
        else None
    )
    model: dict[str, object] = {
        "format": "mpc-model/1",
        "model": t.model.value,
        "method": t.method.value,
        "features": [b.column for b in s.features],
        "label": s.label.column,
        "bounds": [[b.lo, b.hi] for b in s.features],
        "intercept": float(w[0]),
        "coefficients": w[1:].tolist(),
        "standardisation": scaling.to_json(),
        "original_scale": {"intercept": intercept, "coefficients": coef.tolist()},
        "rounds": done,
        "stopped": stopped,
        "warnings": warnings,
        "hyperparameters": {
            "lr": t.lr,
            "step": step,
            "l2": t.l2,
            "clip": t.clip,
            "batch_rate": t.batch_rate,
            "tol": t.tol,
            "holdout": t.holdout,
        },
        "curve": curve,
        "evaluation": evaluation,
        "privacy": _run_privacy(runner, spec, plan, noise, prior_jobs) if noise else None,
        "frac_bits": f,
        "job_id": job_id,
        "resumed_from": query.resume_from or None,
        "parties": list(spec.party_ids),
    }
    labels = ["intercept", *(b.column for b in s.features)]
    values = np.concatenate([[intercept], coef])
    return TrainOutcome(spec, labels, values, resolution(f), model, noise)


def _prior_jobs(query: Query, resume: TrainState | None) -> list[str]:
    """The earlier runs of a resumed job, oldest first (empty for a fresh run)."""
    if resume is None or not query.resume_from:
        return []
    return [*resume.prior_jobs, query.resume_from]


def resume_query(query: Query, state: TrainState, old_job_id: str) -> Query:
    """The query that continues ``query`` from ``state`` (only the rounds it still plans)."""
    t = query.training
    if t is None:
        raise QueryError(f"job {old_job_id} is not a training job")
    total = t.start_round + t.rounds
    if state.round >= total or t.method is Method.CLOSED_FORM:
        raise QueryError(f"job {old_job_id} completed all its rounds: nothing to resume")
    return replace(
        query,
        training=replace(t, rounds=total - state.round, start_round=state.round),
        resume_from=old_job_id,
    )


__all__ = ["TrainOutcome", "TrainState", "TrainingInterruptedError", "resume_query", "train"]
