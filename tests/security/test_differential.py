"""Differential test: a party's observable outcome must not depend on its data.

For every statistic and every training method, with adversarial specs (huge lr, extreme
weights, bounds far narrower and far wider than the data, the largest frac_bits, many bins),
party ``c`` is driven in-process (what the gRPC servicer does) through describe, setup, agree,
an adversarial schedule of rounds and abort, once on its dataset ``D`` and once on each
neighbour ``D'`` (one row changed to extreme values, one row removed, the dataset emptied).

The *observable outcome* of ``c`` is everything the coordinator learns besides the masked
share values: for every stage call "ok" or the exact exception class and message (job id and
temporary directories replaced by placeholders), the length of every vector it announced and
streamed, and so the number of rounds it answered. It must be identical on ``D`` and ``D'``.
A party may refuse a job from the spec alone: the outcome is then simply the same refusal on
every neighbour.

Warnings are errors in this suite (pyproject), so a numpy overflow inside the library shows up
as a ``RuntimeWarning`` outcome: if it happens on some neighbours only, that is a
data-dependent failure and the test reports it (it is deliberately not suppressed here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpc import training as tr
from mpc.config import BudgetConfig, DatasetConfig, PartyConfig, TlsFiles
from mpc.identity import Identity
from mpc.party.runtime import PartyRuntime
from mpc.protocol.secure_sum import SignedKeyOffer
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
from mpc.ring import MAX_FRAC_BITS
from tests.helpers import identity

PARTIES = ("a", "b", "c")
UNDER_TEST = "c"
FEATURES = ("x1", "x2", "x3")
LABEL = "y"
HEADER = ",".join((*FEATURES, LABEL))
MAX_ROWS = 50  # every party, every table dataset (public: part of the spec)
MAX_BINS = 64  # every party's histogram cap
VECTOR_LENGTH = 8
TABLE_ROWS = 20  # rows of c's dataset D
JOB_ID = "diff-job-7"

TABLE = "people"  # cohort dataset (exact and DP releases, always the whole cohort)
DP_TABLE = "people_dp"  # dp-only dataset (with a budget)
VECTOR = "vec"  # cohort vector dataset

# --- data: D, its neighbours, and the fixed data of a and b -----------------------------


def _table_data(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 90.0, size=(rows, len(FEATURES))).round(3)
    y = (rng.uniform(size=rows) < 0.5).astype(np.float64)
    y[:2] = (0.0, 1.0)  # both classes present
    return np.column_stack([x, y])


def _vector_data(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 10.0, size=VECTOR_LENGTH).round(3)


DBL_MAX = float(np.finfo(np.float64).max)
EXTREMES = {
    "1e300": 1e300,
    "-1e300": -1e300,
    "1e-300": 1e-300,
    "zero": 0.0,
    "dblmax": DBL_MAX,
    "-dblmax": -DBL_MAX,
}


def _first_row(values: list[float] | float) -> Callable[[np.ndarray], np.ndarray]:
    """D with its first row replaced by ``values`` (one value: in every column)."""

    def change(d: np.ndarray) -> np.ndarray:
        return np.vstack(
            [np.broadcast_to(np.asarray(values, dtype=np.float64), d[:1].shape), d[1:]]
        )

    return change


def _first_element(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(v: np.ndarray) -> np.ndarray:
        return np.concatenate([[value], v[1:]])

    return change


#: Neighbours of the table dataset D of party c: name -> D' (None: header only).
TABLE_NEIGHBOURS: dict[str, Callable[[np.ndarray], np.ndarray | None]] = {
    **{f"row_{name}": _first_row(value) for name, value in EXTREMES.items()},
    # Alternating signs: sums and products of this row's values overflow or cancel to NaN.
    "row_mixed": _first_row([DBL_MAX, -DBL_MAX, 1e300, -1e300]),
    "row_removed": lambda d: d[1:],
    "emptied": lambda d: None,
}

#: Neighbours of the vector dataset of party c (one element changed to an extreme value).
VECTOR_NEIGHBOURS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    f"element_{name}": _first_element(value) for name, value in EXTREMES.items()
}

ORIGINAL = "original"


def _write_table(path: Path, data: np.ndarray | None) -> None:
    lines = [HEADER]
    if data is not None:
        lines += [",".join(repr(float(v)) for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- configs ----------------------------------------------------------------------------

_DATASET_FIELDS = frozenset(f.name for f in dataclasses.fields(DatasetConfig))


def dataset_config(name: str, path: Path, max_rows: int, **options: Any) -> DatasetConfig:
    """A DatasetConfig with only the options this version of the class has (the old code
    lacks ``participation``, ``cohort``, ``min_parties`` and ``max_bins``)."""
    kept = {key: value for key, value in options.items() if key in _DATASET_FIELDS}
    return DatasetConfig(name, path, max_rows, **kept)


def party_config(
    pid: str, data_dir: Path, state_dir: Path, cert_dir: Path, *, with_budget: bool
) -> PartyConfig:
    """Party ``pid``'s config: the cohort table and vector datasets; with ``with_budget`` also
    the dp-only dataset and the state database (SQLite, fsync'ed: only where it is needed,
    which keeps the suite fast). The same config on every neighbour of one case."""
    cohort = {"participation": "cohort", "cohort": PARTIES, "max_bins": MAX_BINS}
    datasets = [
        dataset_config(TABLE, data_dir / "table.csv", MAX_ROWS, **cohort),
        dataset_config(VECTOR, data_dir / "vector.npy", 1, kind="vector", **cohort),
    ]
    if with_budget:
        datasets.append(
            dataset_config(
                DP_TABLE,
                data_dir / "table.csv",
                MAX_ROWS,
                budget=BudgetConfig(epsilon=50.0, delta=0.01, allow_central=True),
                participation="dp-only",
                max_bins=MAX_BINS,
            )
        )
    # Signed client queries are orthogonal to this test (tests/security/test_client_auth.py):
    # the in-process coordinator here sends unsigned specs, which this party then accepts.
    unsigned = (
        {"require_signed_queries": False}
        if "require_signed_queries" in {f.name for f in dataclasses.fields(PartyConfig)}
        else {}
    )
    return PartyConfig(
        party_id=pid,
        listen="127.0.0.1:0",
        tls=TlsFiles.from_dir(cert_dir, pid),
        datasets=tuple(datasets),
        ledger=state_dir / f"{pid}.state.sqlite" if with_budget else None,
        **unsigned,
    )


def _close(runtime: PartyRuntime) -> None:
    close = getattr(runtime, "close", None)
    if callable(close):
        close()
        return
    ledger = getattr(runtime, "_ledger", None)
    if ledger is not None:
        ledger.close()


# --- adversarial cases ------------------------------------------------------------------

SANE = (0.0, 100.0)
NARROW = (0.0, 1e-9)  # far narrower than the data
WIDE = (-1e12, 1e12)  # far wider than the data (fits the ring at 8 fractional bits)
HUGE = (-1e300, 1e300)  # sums and moments cannot fit the ring: refused from the spec alone
LABEL_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True)
class Case:
    name: str
    statistic: Statistic
    dataset: str = TABLE
    columns: tuple[str, ...] = FEATURES
    bounds: tuple[float, float] = SANE
    frac_bits: int = 16
    bins: int = 0
    privacy: PrivacySpec | None = None
    training: TrainingSpec | None = None
    #: Training: the weights of every step/eval round input (one value, or a pattern repeated
    #: over the p coefficients).
    weights: tuple[float, ...] = (0.0,)
    #: Training with secure standardisation: send extreme (finite) means and tiny scales in
    #: the round input instead of (0, 1).
    extreme_scaling: bool = False

    @property
    def kind(self) -> str:
        return "vector" if self.dataset == VECTOR else "table"


def central(epsilon: float = 1.0, delta: float = 1e-6) -> PrivacySpec:
    return PrivacySpec(NoiseMode.CENTRAL, epsilon, delta, 0)


def distributed(colluders: int = 2) -> PrivacySpec:
    return PrivacySpec(NoiseMode.DISTRIBUTED, 1.0, 1e-6, colluders)


def _query_cases() -> list[Case]:
    cases = []
    bound_sets = {
        "sane": (SANE, 16),
        "narrow": (NARROW, 16),
        "wide_f8": (WIDE, 8),
        "wide_f16": (WIDE, 16),  # over the ring's headroom with 16 fractional bits
        "huge": (HUGE, 0),
        "maxfrac": (SANE, MAX_FRAC_BITS),
    }
    for label, (bounds, bits) in bound_sets.items():
        for stat in (Statistic.SUM, Statistic.MEAN, Statistic.VARIANCE):
            cases.append(Case(f"{stat.value}_{label}", stat, bounds=bounds, frac_bits=bits))
        cases.append(
            Case(
                f"histogram4_{label}",
                Statistic.HISTOGRAM,
                columns=FEATURES[:1],
                bounds=bounds,
                frac_bits=bits,
                bins=4,
            )
        )
        cases.append(
            Case(
                f"vector_sum_{label}",
                Statistic.VECTOR_SUM,
                dataset=VECTOR,
                columns=("value",),
                bounds=bounds,
                frac_bits=bits,
            )
        )
    cases += [
        Case("count", Statistic.COUNT, columns=()),
        Case("count_maxfrac", Statistic.COUNT, columns=(), frac_bits=MAX_FRAC_BITS),
        Case("count_on_column", Statistic.COUNT, columns=FEATURES[:1]),
    ]
    for bins, label in ((MAX_BINS, "at_cap"), (MAX_BINS + 1, "over_cap"), (5000, "far_over")):
        cases.append(
            Case(
                f"histogram{bins}_{label}",
                Statistic.HISTOGRAM,
                columns=FEATURES[:1],
                bins=bins,
            )
        )
    # Differential privacy: on the dp-only dataset and on the cohort dataset.
    for stat in (Statistic.SUM, Statistic.COUNT, Statistic.MEAN, Statistic.VARIANCE):
        columns = () if stat is Statistic.COUNT else FEATURES
        for noise, privacy in (("central", central()), ("distributed", distributed())):
            cases.append(
                Case(
                    f"dp_{noise}_{stat.value}",
                    stat,
                    dataset=DP_TABLE,
                    columns=columns,
                    privacy=privacy,
                )
            )
    cases += [
        Case(
            "dp_central_histogram4",
            Statistic.HISTOGRAM,
            dataset=DP_TABLE,
            columns=FEATURES[:1],
            bins=4,
            privacy=central(),
        ),
        Case(
            "dp_distributed_histogram_at_cap",
            Statistic.HISTOGRAM,
            dataset=DP_TABLE,
            columns=FEATURES[:1],
            bins=MAX_BINS,
            privacy=distributed(),
        ),
        Case(
            "dp_central_histogram_over_cap",
            Statistic.HISTOGRAM,
            dataset=DP_TABLE,
            columns=FEATURES[:1],
            bins=MAX_BINS + 1,
            privacy=central(),
        ),
        Case(
            "dp_laplace_count",
            Statistic.COUNT,
            dataset=DP_TABLE,
            columns=(),
            privacy=central(delta=0.0),
        ),
        Case(
            "dp_central_sum_narrow",
            Statistic.SUM,
            dataset=DP_TABLE,
            bounds=NARROW,
            privacy=central(),
        ),
        Case(
            "dp_central_mean_huge",
            Statistic.MEAN,
            dataset=DP_TABLE,
            bounds=HUGE,
            frac_bits=0,
            privacy=central(),
        ),
        Case(
            "dp_central_variance_wide",
            Statistic.VARIANCE,
            dataset=DP_TABLE,
            bounds=WIDE,
            frac_bits=8,
            privacy=central(),
        ),
        Case(
            "dp_central_sum_maxfrac",
            Statistic.SUM,
            dataset=DP_TABLE,
            frac_bits=MAX_FRAC_BITS,
            privacy=central(),
        ),
        Case(
            "dp_distributed_sum_0_colluders",
            Statistic.SUM,
            dataset=DP_TABLE,
            privacy=distributed(0),
        ),
        Case("dp_huge_epsilon_sum", Statistic.SUM, dataset=DP_TABLE, privacy=central(1e6)),
        Case("exact_sum_on_dp_only", Statistic.SUM, dataset=DP_TABLE),
        Case("dp_central_mean_on_cohort", Statistic.MEAN, privacy=central()),
    ]
    return cases


def _train(
    model: Model,
    method: Method,
    standardise: Standardise,
    *,
    rounds: int = 2,
    lr: float = 0.5,
    clip: float = 0.0,
    holdout: float = 0.0,
    batch_rate: float = 0.0,
    l2: float = 0.0,
) -> TrainingSpec:
    return TrainingSpec(
        model,
        LABEL,
        rounds,
        lr=lr,
        l2=l2,
        clip=clip,
        batch_rate=batch_rate,
        method=method,
        holdout=holdout,
        standardise=standardise,
    )


W_EXTREME: dict[str, tuple[float, ...]] = {
    "w0": (0.0,),
    "w1e6": (1e6,),
    "w1e300": (1e300,),
    "w-1e300": (-1e300,),
}
W_MIXED: tuple[float, ...] = (1e300, -1e300)


def _training_cases() -> list[Case]:
    lin, log = Model.LINEAR, Model.LOGISTIC
    gd, newton, closed = Method.GD, Method.NEWTON, Method.CLOSED_FORM
    secure, bounds, none = Standardise.SECURE, Standardise.BOUNDS, Standardise.NONE
    cases: list[Case] = []

    def add(name: str, training: TrainingSpec, **kwargs: Any) -> None:
        cases.append(Case(f"train_{name}", Statistic.TRAIN, training=training, **kwargs))

    for wname, weights in W_EXTREME.items():
        add(f"linear_gd_secure_{wname}", _train(lin, gd, secure), weights=weights)
        add(f"logistic_gd_secure_{wname}", _train(log, gd, secure), weights=weights)
    add("linear_gd_secure_wmixed", _train(lin, gd, secure), weights=W_MIXED)
    add("linear_gd_bounds_w1e6", _train(lin, gd, bounds), weights=(1e6,))
    for model, method in ((lin, gd), (log, gd), (log, newton)):
        add(
            f"{model.value}_{method.value}_secure_extreme_scaling_w1e6",
            _train(model, method, secure),
            weights=(1e6,),
            extreme_scaling=True,
        )
    add(
        "linear_closed_form_secure_huge_bounds",
        _train(lin, closed, secure),
        bounds=HUGE,
        frac_bits=0,
    )
    add("linear_newton_none_huge_bounds", _train(lin, newton, none), bounds=HUGE, frac_bits=0)
    add("linear_gd_secure_huge_bounds_w1e6", _train(lin, gd, secure), bounds=HUGE, weights=(1e6,))
    add("logistic_gd_none_w1e6", _train(log, gd, none), weights=(1e6,))
    add("logistic_gd_none_w1e300", _train(log, gd, none), weights=(1e300,))
    add("logistic_newton_secure_w1e6", _train(log, newton, secure), weights=(1e6,))
    add("logistic_newton_bounds_w-1e300", _train(log, newton, bounds), weights=(-1e300,))
    add("linear_newton_none_wmixed", _train(lin, newton, none), weights=W_MIXED)
    for std in (secure, bounds, none):
        add(f"linear_closed_form_{std.value}", _train(lin, closed, std, l2=0.1))
    add("linear_gd_huge_lr", _train(lin, gd, bounds, lr=1e300), weights=(1e6,))
    add("linear_gd_lr_101", _train(lin, gd, bounds, lr=101.0))
    add("linear_gd_none_huge_bounds_w1e6", _train(lin, gd, none), bounds=HUGE, weights=(1e6,))
    add("linear_gd_bounds_huge_bounds", _train(lin, gd, bounds), bounds=HUGE, frac_bits=0)
    add("logistic_gd_bounds_narrow_w1e6", _train(log, gd, bounds), bounds=NARROW, weights=(1e6,))
    add(
        "linear_gd_none_wide_f8_w1e6",
        _train(lin, gd, none),
        bounds=WIDE,
        frac_bits=8,
        weights=(1e6,),
    )
    add(
        "logistic_gd_secure_maxfrac",
        _train(log, gd, secure, clip=1.0),
        frac_bits=MAX_FRAC_BITS,
        weights=(1e6,),
    )
    add(
        "linear_gd_holdout_batch",
        _train(lin, gd, secure, holdout=0.3, batch_rate=0.5),
        weights=(1e6,),
    )
    add("too_many_rounds_spec", _train(lin, gd, bounds, rounds=100_000))
    for noise, privacy in (("central", central()), ("distributed", distributed())):
        dp_weights: dict[str, tuple[float, ...]] = {"w0": (0.0,), "w1e6": (1e6,), "wmixed": W_MIXED}
        for wname, weights in dp_weights.items():
            add(
                f"dp_{noise}_logistic_gd_bounds_{wname}",
                _train(log, gd, bounds, clip=1.0),
                dataset=DP_TABLE,
                privacy=privacy,
                weights=weights,
            )
    add(
        "dp_central_linear_gd_none_huge_bounds",
        _train(lin, gd, none, clip=1.0),
        dataset=DP_TABLE,
        privacy=central(),
        bounds=HUGE,
        weights=(1e6,),
    )
    return cases


CASES = _query_cases() + _training_cases()


def build_spec(case: Case) -> JobSpec:
    columns = [ColumnBound(name, *case.bounds) for name in case.columns]
    if case.training is not None:
        columns.append(ColumnBound(LABEL, *LABEL_BOUNDS))
    edges: tuple[float, ...] = ()
    if case.bins:
        edges = tuple(np.linspace(case.bounds[0], case.bounds[1], case.bins + 1).tolist())
    max_rows = 1 if case.kind == "vector" else MAX_ROWS
    return JobSpec(
        job_id=JOB_ID,
        statistic=case.statistic,
        dataset=case.dataset,
        columns=tuple(columns),
        frac_bits=case.frac_bits,
        participants=tuple(Participant(pid, max_rows) for pid in PARTIES),
        vector_length=VECTOR_LENGTH if case.statistic is Statistic.VECTOR_SUM else 0,
        privacy=case.privacy,
        training=case.training,
        bin_edges=edges,
    )


Round = tuple[str, int, np.ndarray | None]  # (label, round id, public round input)


def schedule(case: Case, spec: JobSpec) -> list[Round]:
    """An adversarial round schedule: more rounds than the spec allows, and a replay."""
    t = spec.training
    if t is None:
        return [("query", 0, None), ("replay", 0, None), ("extra", 1, None)]
    d = len(spec.columns) - 1
    weights = np.resize(np.asarray(case.weights, dtype=np.float64), d + 1)
    if t.standardise is Standardise.SECURE and case.extreme_scaling:
        mean = np.resize(np.array([-DBL_MAX, DBL_MAX, -1e300, 1e300]), d)
        scaling = tr.Scaling(Standardise.SECURE, mean, np.full(d, 1e-300))
    elif t.standardise is Standardise.SECURE:
        scaling = tr.Scaling(Standardise.SECURE, np.zeros(d), np.ones(d))
    else:
        scaling = tr.bounds_scaling(spec)
    step = tr.round_input(tr.KIND_STEP, scaling, weights)
    rounds: list[Round] = []
    if t.standardise is Standardise.SECURE or t.method is Method.CLOSED_FORM:
        rounds.append(("gram", len(rounds), tr.round_input(tr.KIND_GRAM)))
    for i in range(min(t.rounds, 3) + 1):  # one step more than the spec allows (or 4)
        rounds.append((f"step{i + 1}", len(rounds), step))
    rounds.append(("eval", len(rounds), tr.round_input(tr.KIND_EVAL, scaling, weights)))
    rounds.append(("step_after_eval", len(rounds), step))
    rounds.append(("replay_round0", 0, rounds[0][2]))
    return rounds


# --- driving party c ---------------------------------------------------------------------


def _describe_error(exc: BaseException, replacements: dict[str, str]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def _drain(chunks: Iterator[tuple[int, np.ndarray]]) -> tuple[int, int]:
    """Consume every chunk (errors can happen lazily); (chunks, words) streamed."""
    count = words = 0
    for _, chunk in chunks:
        count += 1
        words += int(np.asarray(chunk).size)
    return count, words


Rounds = Iterable[tuple[str, int, np.ndarray | None]]
Recorder = Callable[[str, Callable[[], object]], tuple[bool, object]]


def recorder(outcome: list[object], replacements: dict[str, str]) -> Recorder:
    """``record(stage, call)``: run ``call``; on an exception append the stage and its exact
    (normalised) text to ``outcome`` -- the refusal text is what party c lets out."""

    def record(stage: str, call: Callable[[], object]) -> tuple[bool, object]:
        try:
            value = call()
        except Exception as exc:  # the exact refusal text is the observable
            outcome.append((stage, _describe_error(exc, replacements)))
            return False, None
        return True, value

    return record


def drive_job(
    runtimes: dict[str, PartyRuntime],
    spec: JobSpec,
    job_id: str,
    rounds: Rounds,
    record: Recorder,
    outcome: list[object],
) -> None:
    """Setup, key agreement, every round of ``rounds`` and abort at every party, appending
    party c's observable outcome; the other parties hold fixed data, so their failures are
    not c's outcome."""
    c = runtimes[UNDER_TEST]
    offers: list[SignedKeyOffer] = []
    failed: list[str] = []
    for pid, runtime in runtimes.items():
        if pid == UNDER_TEST:
            ok, offer = record("setup", functools.partial(runtime.setup, spec))
            if ok:
                outcome.append(("setup", "ok"))
        else:
            try:
                offer, ok = runtime.setup(spec), True
            except Exception:
                ok = False
        if ok:
            assert isinstance(offer, SignedKeyOffer)
            offers.append(offer)
        else:
            failed.append(pid)
    if failed:
        outcome.append(("setup failed at", tuple(failed)))
    else:
        for pid, runtime in runtimes.items():
            if pid == UNDER_TEST:
                ok, _ = record("agree", functools.partial(runtime.agree, job_id, offers))
                if ok:
                    outcome.append(("agree", "ok"))
            else:
                runtime.agree(job_id, offers)
        answered = 0
        for label, round_id, round_input in rounds:
            for pid, runtime in runtimes.items():
                if pid != UNDER_TEST:
                    with contextlib.suppress(Exception):
                        _drain(runtime.contribute(job_id, round_id, round_input)[1])

            def contribute(
                round_id: int = round_id, round_input: np.ndarray | None = round_input
            ) -> tuple[int, int, int]:
                length, chunks = c.contribute(job_id, round_id, round_input)
                return (length, *_drain(chunks))

            ok, shape = record(f"round {label} (id {round_id})", contribute)
            if ok:
                answered += 1
                outcome.append((f"round {label} (id {round_id})", "ok", shape))
        outcome.append(("rounds answered", answered))
    for pid, runtime in runtimes.items():
        if pid == UNDER_TEST:
            ok, _ = record("abort", functools.partial(runtime.abort, job_id))
            if ok:
                outcome.append(("abort", "ok"))
        else:
            runtime.abort(job_id)


def observe(
    case: Case,
    c_data: Path,
    ab_data: Path,
    state_dir: Path,
    cert_dir: Path,
    identities: dict[str, Identity],
) -> tuple[object, ...]:
    """Party c's observable outcome of one job (see the module docstring)."""
    replacements = {
        JOB_ID: "<job>",
        str(c_data): "<data>",
        str(ab_data): "<data>",
        str(state_dir): "<state>",
    }
    outcome: list[object] = []
    record = recorder(outcome, replacements)
    try:
        spec = build_spec(case)
    except Exception as exc:  # refused before any party sees it: nothing to compare
        return (("spec", _describe_error(exc, replacements)),)
    runtimes: dict[str, PartyRuntime] = {}
    try:
        for pid in PARTIES:
            data = c_data if pid == UNDER_TEST else ab_data
            config = party_config(
                pid, data, state_dir, cert_dir, with_budget=case.dataset == DP_TABLE
            )
            runtimes[pid] = PartyRuntime(config, identities[pid])
        c = runtimes[UNDER_TEST]
        ok, infos = record("describe", c.describe)
        if ok:
            text = repr(infos)
            for old, new in replacements.items():
                text = text.replace(old, new)
            outcome.append(("describe", text))
        drive_job(runtimes, spec, JOB_ID, schedule(case, spec), record, outcome)
    finally:
        for runtime in runtimes.values():
            _close(runtime)
    return tuple(outcome)


# --- fixtures and the test ------------------------------------------------------------------


class World:
    """Data files for D, every neighbour and the fixed parties, and an outcome cache."""

    def __init__(self, root: Path, cert_dir: Path) -> None:
        self.root = root
        self.cert_dir = cert_dir
        self.identities = {pid: identity(cert_dir, pid) for pid in PARTIES}
        self.ab_dir = root / "ab"
        self.ab_dir.mkdir()
        _write_table(self.ab_dir / "table.csv", _table_data(10, seed=1))
        np.save(self.ab_dir / "vector.npy", _vector_data(seed=1))
        table, vector = _table_data(TABLE_ROWS, seed=2), _vector_data(seed=2)
        self.c_dirs: dict[str, Path] = {}
        for name in (ORIGINAL, *TABLE_NEIGHBOURS, *VECTOR_NEIGHBOURS):
            directory = root / f"c-{name}"
            directory.mkdir()
            self.c_dirs[name] = directory
            t = TABLE_NEIGHBOURS[name](table) if name in TABLE_NEIGHBOURS else table
            v = VECTOR_NEIGHBOURS[name](vector) if name in VECTOR_NEIGHBOURS else vector
            _write_table(directory / "table.csv", t)
            np.save(directory / "vector.npy", v)
        self._runs = itertools.count()
        self._cache: dict[tuple[str, str], tuple[object, ...]] = {}

    def outcome(self, case: Case, neighbour: str) -> tuple[object, ...]:
        key = (case.name, neighbour)
        if key not in self._cache:
            state_dir = self.root / f"state-{next(self._runs)}"
            state_dir.mkdir()
            self._cache[key] = observe(
                case,
                self.c_dirs[neighbour],
                self.ab_dir,
                state_dir,
                self.cert_dir,
                self.identities,
            )
        return self._cache[key]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, cert_dir: Path) -> World:
    return World(tmp_path_factory.mktemp("differential"), cert_dir)


def _params() -> list[Any]:
    params = []
    for case in CASES:
        neighbours = VECTOR_NEIGHBOURS if case.kind == "vector" else TABLE_NEIGHBOURS
        params += [pytest.param(case, n, id=f"{case.name}-{n}") for n in neighbours]
    return params


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("case", "neighbour"), _params())
def test_outcome_is_the_same_on_neighbouring_datasets(
    world: World, case: Case, neighbour: str
) -> None:
    expected = world.outcome(case, ORIGINAL)
    assert world.outcome(case, neighbour) == expected
