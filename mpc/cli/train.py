"""``mpc train`` (secure model training) and ``mpc predict`` (apply a model locally)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mpc.cli._common import _add_client_options, _client, _columns, _parse_bounds
from mpc.errors import InputDataError, QueryError

if TYPE_CHECKING:
    from mpc.coordinator.events import JobEvent


class TrainProgress:
    """Training progress on stderr (never stdout, so ``--json`` output stays one object).

    On a terminal (without ``--json``) a bar redrawn in place; otherwise one line per round
    (``round i/N loss L elapsed Ts``) and per stage, so a log of a long run shows it moving.
    """

    def __init__(self, stream: TextIO, *, bar: bool, enabled: bool = True) -> None:
        self.stream, self.bar, self.enabled = stream, bar, enabled
        self.started = time.monotonic()
        self.drawn = False
        self.last_stage = ""

    def __call__(self, event: JobEvent) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        if self.bar:
            filled = int(24 * max(0.0, min(1.0, event.progress)))
            line = f"[{'#' * filled}{'.' * (24 - filled)}] {event.stage}: {event.message}"
            print(f"\r{line} ({elapsed:.1f}s)".ljust(78), end="", file=self.stream, flush=True)
            self.drawn = True
        elif event.stage == "round" or event.stage != self.last_stage:
            print(f"{event.message} elapsed {elapsed:.1f}s", file=self.stream, flush=True)
        self.last_stage = event.stage

    def finish(self) -> None:
        if self.drawn:
            print(file=self.stream)


def cmd_train(args: argparse.Namespace) -> int:
    if args.plot:
        from mpc.training.plot import require_matplotlib

        require_matplotlib()  # before the run, not after it
    on_event = TrainProgress(
        sys.stderr, bar=not args.json and sys.stderr.isatty(), enabled=not args.quiet
    )

    features = _columns(args.features) if args.features else []
    if not args.resume and (not features or not args.label):
        raise QueryError("train needs --features and --label (or --resume JOB)")
    with _client(args) as client:
        result = client.train(
            args.model,
            args.dataset or "",
            features,
            args.label or "",
            rounds=args.rounds,
            lr=0.0 if args.lr is None else args.lr,  # 0: the coordinator's safe step
            frac_bits=args.frac_bits,
            l2=args.l2,
            clip=args.clip,
            batch_rate=args.batch_rate,
            method=args.method,
            closed_form=args.closed_form,
            tol=args.tol,
            holdout=args.holdout,
            standardise=args.standardise,
            bounds=_parse_bounds(args.bounds, [*features, args.label or ""]) or None,
            parties=_columns([args.parties]) if args.parties else (),
            epsilon=args.epsilon,
            delta=args.delta,
            noise=args.noise,
            resume=args.resume or "",
            on_event=on_event,
        )
    on_event.finish()
    if args.out:
        Path(args.out).write_text(json.dumps(result.model, indent=2) + "\n")
    if args.plot:
        from mpc.training.plot import plot_curve

        plot_curve(
            result.curve,
            args.plot,
            evaluation=result.evaluation,
            title=f"{result.model['model']} regression, job {result.job_id}",
        )
    warnings = [str(w) for w in result.model.get("warnings") or []]
    if args.json:
        print(json.dumps(result.model))
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    model = result.model
    print(f"{model['model']} regression, job {result.job_id}, {model['rounds']} round(s):")
    for label, value in zip(result.labels, result.values, strict=True):
        print(f"  {label:<20} {value:.6g}")
    curve = result.curve
    if curve:
        print(f"  loss {curve[0]['loss']:.6g} (round 1) -> {curve[-1]['loss']:.6g}")
    for key, value in (result.evaluation or {}).items():
        if value is not None:
            print(f"  {key:<20} {value:.6g}")
    if result.privacy is not None:
        print(f"  differential privacy: spent epsilon {result.privacy.epsilon_spent:.4g}")
    for warning in warnings:
        print(f"  warning: {warning}")
    if args.out:
        print(f"  model saved to {args.out}")
    if args.plot:
        print(f"  training curve saved to {args.plot}")
    return 0


def read_csv_header(path: Path) -> list[str]:
    """The column names of the operator's own CSV file (``mpc predict`` runs locally).

    Naming the path is right here: nothing of this leaves the machine. Parties never use
    this; they validate their datasets in :mod:`mpc.party.data` and publish only a status.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
    except OSError as exc:
        raise InputDataError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{path} is not UTF-8 text") from None
    names = [cell.strip() for cell in next(csv.reader([first]), [])]
    if not names:
        raise InputDataError(f"{path} is empty: expected a header line with column names")
    if len(set(names)) != len(names):
        raise InputDataError(f"{path}: the header names a column twice")
    return names


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mpc.training import predict

    try:
        model = json.loads(Path(args.model).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the model {args.model}: {exc}") from None
    features = list(model["features"])
    header = read_csv_header(Path(args.csv))
    missing = [f for f in features if f not in header]
    if missing:
        raise InputDataError(f"{args.csv} lacks the model's features {missing}")
    table = np.loadtxt(args.csv, delimiter=",", skiprows=1, ndmin=2)
    x = table[:, [header.index(f) for f in features]]
    predicted, probability = predict(model, x)
    if args.out:
        out = np.column_stack([predicted] + ([] if probability is None else [probability]))
        names = "prediction" + ("" if probability is None else ",probability")
        np.savetxt(args.out, out, delimiter=",", header=names, comments="", fmt="%.10g")
    if args.json:
        print(
            json.dumps(
                {
                    "predictions": predicted.tolist(),
                    "probabilities": None if probability is None else probability.tolist(),
                }
            )
        )
    elif not args.out:
        for i, value in enumerate(predicted):
            extra = "" if probability is None else f" {probability[i]:.6g}"
            print(f"{value:.10g}{extra}")
    else:
        print(f"wrote {predicted.size} predictions to {args.out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a linear or logistic regression model over the parties' rows",
        description="Secure training over rounds: every round only the sum of clipped "
        "per-example gradients over all parties is revealed. See README 'Training'.",
    )
    train.add_argument("model", choices=["linear", "logistic"])
    train.add_argument("--dataset", help="dataset name the parties declare")
    train.add_argument("--features", action="append", default=[], help="comma-separated")
    train.add_argument("--label", help="the column to predict")
    train.add_argument("--rounds", type=int, default=20, help="model updates (default 20)")
    train.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: automatic, at most 1/curvature of the data, capped at 1)",
    )
    train.add_argument(
        "--frac-bits",
        type=int,
        help="fixed-point fractional bits (default: the most the headroom proof allows)",
    )
    train.add_argument("--l2", type=float, default=0.0, help="ridge penalty (default 0)")
    train.add_argument("--clip", type=float, default=0.0, help="per-example gradient L2 clip")
    train.add_argument("--batch-rate", type=float, default=0.0, help="Poisson sampling rate")
    train.add_argument(
        "--method",
        choices=["gd", "newton"],
        default="gd",
        help="gradient descent (default) or Newton steps (logistic; --lr is ignored)",
    )
    train.add_argument("--closed-form", action="store_true", help="one-round ridge (linear)")
    train.add_argument("--tol", type=float, default=0.0, help="stop at this gradient norm")
    train.add_argument("--holdout", type=float, default=0.0, help="hold-out fraction of rows")
    train.add_argument(
        "--standardise",
        choices=["secure", "bounds", "none"],
        help="scale features by secure moments over all parties, by the declared bounds, or "
        "not at all (default: secure; bounds with --epsilon)",
    )
    train.add_argument(
        "--bounds",
        action="append",
        default=[],
        metavar="[COLUMN=]LO:HI",
        help="clamp values to [LO, HI] (default: the bounds the parties declare)",
    )
    train.add_argument(
        "--parties",
        help=(
            "comma-separated parties to ask (default: all); a cohort dataset is answered only "
            "for its whole cohort, subsets only on dp-only datasets"
        ),
    )
    train.add_argument("--epsilon", type=float, help="differentially private training")
    train.add_argument("--delta", type=float, default=1e-6, help="DP delta (default 1e-6)")
    train.add_argument(
        "--noise",
        choices=["distributed", "central"],
        default="distributed",
        help="who adds the noise: every party (distributed, default) or the coordinator",
    )
    train.add_argument("--resume", metavar="JOB", help="continue a failed training job")
    train.add_argument("--out", help="write the model as JSON to this file")
    train.add_argument(
        "--plot",
        metavar="FILE",
        help="write the training curve (loss per round, evaluation) as PNG (needs matplotlib)",
    )
    train.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (default: a line per round)"
    )
    _add_client_options(train, runs_job=True)
    train.set_defaults(func=cmd_train)

    predict = subparsers.add_parser("predict", help="apply a model file to a CSV, locally")
    predict.add_argument("--model", required=True, help="model JSON from mpc train --out")
    predict.add_argument("--csv", required=True, help="CSV with a header naming the features")
    predict.add_argument("--out", help="write predictions (and probabilities) as CSV")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=cmd_predict)
