"""The ``mpc`` command line. It parses, validates, makes one typed call, and prints.

Errors from mpc print one line (``error: ...``) and exit 2 for bad input, 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mpc.errors import ConfigError, InputDataError, MpcError, QueryError

if TYPE_CHECKING:
    from mpc.ledger import BudgetStatus

EXIT_FAILURE = 1
EXIT_USAGE = 2

_EPILOG = """\
examples:
  mpc demo                                   run a 3-party demo on this machine
  mpc certs init --out certs --parties a,b,c
  mpc party serve --config party-a.toml
  mpc coordinator serve --config coordinator.toml
  mpc query mean --dataset health --column age --bounds 18:100 \\
      --coordinator 127.0.0.1:50050 --tls-dir certs --json
"""


def _parse_bounds(values: Sequence[str], columns: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``LO:HI`` (all columns) or ``COLUMN=LO:HI``; negative numbers need ``--bounds=-5:5``."""
    bounds: dict[str, tuple[float, float]] = {}
    for value in values:
        column, sep, rng = value.rpartition("=")
        lo_text, colon, hi_text = rng.partition(":")
        try:
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            lo = hi = math.nan
        if not colon or not (math.isfinite(lo) and math.isfinite(hi)):
            raise QueryError(
                f"--bounds {value!r}: expected LO:HI or COLUMN=LO:HI with finite numbers"
            )
        targets = [column] if sep else list(columns) or ["value"]
        for target in targets:
            if lo > hi:
                raise QueryError(f"--bounds {value!r}: LO must not exceed HI")
            bounds[target] = (lo, hi)
    return bounds


def _columns(values: Sequence[str]) -> list[str]:
    return [c.strip() for value in values for c in value.split(",") if c.strip()]


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --- commands ----------------------------------------------------------------------------


def cmd_certs_init(args: argparse.Namespace) -> int:
    from mpc.identity import init_certificates

    parties = _columns([args.parties])
    admins = _columns([args.admins]) if args.admins else []
    written = init_certificates(
        Path(args.out),
        parties,
        clients=tuple(_columns([args.clients])),
        admins=tuple(admins),
        extra_hosts=tuple(_columns([args.hosts])) if args.hosts else (),
        days=args.days,
        overwrite=args.force,
    )
    if args.json:
        print(json.dumps({"out": args.out, "files": [str(p) for p in written]}))
    else:
        print(
            f"wrote a CA and certificates for coordinator, {', '.join(parties)} and "
            f"{args.clients}"
            + (f" (admins: {', '.join(admins)})" if admins else "")
            + f" to {args.out}/ (keep ca.key offline)"
        )
    return 0


def cmd_certs_revoke(args: argparse.Namespace) -> int:
    from mpc.identity import revoke_certificate

    done = revoke_certificate(
        Path(args.tls_dir), args.name, crl_path=Path(args.crl) if args.crl else None
    )
    if args.json:
        print(json.dumps(done.to_json()))
    elif done.already_revoked:
        print(f"{args.name!r} (serial {done.serial:#x}) was already revoked in {done.crl}")
    else:
        print(
            f"revoked {args.name!r} (serial {done.serial:#x}): {done.crl} now lists "
            f"{done.revoked_count} certificate(s). Servers reading this file refuse it from "
            "their next call on, without a restart; copy the file to servers with their own "
            "copy of ca.pem."
        )
    return 0


def cmd_party_serve(args: argparse.Namespace) -> int:
    from mpc.config import load_party_config
    from mpc.transport.party_server import serve_party

    config = load_party_config(Path(args.config))
    serve_party(config, Path(args.ready_file) if args.ready_file else None)
    return 0


def cmd_coordinator_serve(args: argparse.Namespace) -> int:
    from mpc.config import load_coordinator_config
    from mpc.transport.coordinator_server import serve_coordinator

    config = load_coordinator_config(Path(args.config))
    serve_coordinator(config, Path(args.ready_file) if args.ready_file else None)
    return 0


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from mpc.client import Client

    return Client(args.coordinator, tls_dir=args.tls_dir, name=args.name, timeout=args.timeout)


def _parse_bins(value: str | None) -> list[float]:
    """``E0,E1,...,Ek`` -> bin edges (checked for order and finiteness by the coordinator)."""
    if not value:
        return []
    try:
        edges = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise QueryError(f"--bins {value!r}: expected comma-separated numbers E0,E1,...") from None
    return edges


def cmd_query(args: argparse.Namespace) -> int:
    from mpc.coordinator.service import JobEvent

    statistic = args.statistic.replace("-", "_")
    columns = _columns(args.column)
    bounds = _parse_bounds(args.bounds, columns)
    edges = _parse_bins(args.bins)
    if statistic == "histogram" and not edges:
        raise QueryError("histogram needs --bins E0,E1,...,Ek (at least 2 edges)")
    if statistic != "histogram" and edges:
        raise QueryError("--bins is only for histogram")
    if statistic == "vector_sum":
        columns = ["value"]
    show_progress = not args.json and sys.stderr.isatty()

    def on_event(event: JobEvent) -> None:
        if show_progress:
            print(
                f"\r[{event.progress:4.0%}] {event.stage}: {event.message}".ljust(78),
                end="",
                file=sys.stderr,
                flush=True,
            )

    with _client(args) as client:
        result = client.query(
            statistic,
            args.dataset,
            columns,
            bounds or None,
            parties=_columns([args.parties]) if args.parties else (),
            frac_bits=args.frac_bits,
            epsilon=args.epsilon,
            delta=args.delta,
            noise=args.noise,
            on_event=on_event,
            bin_edges=edges,
        )
    if show_progress:
        print(file=sys.stderr)
    if args.out:
        import numpy as np

        np.save(args.out, result.values)
    if args.json:
        print(json.dumps(result.to_json(include_values=not args.out)))
    else:
        print(
            f"{result.statistic} over {result.dataset!r} from parties {', '.join(result.parties)}"
            f" (job {result.job_id}):"
        )
        if statistic == "histogram" and result.values.size <= 50:
            for lo, hi, value in zip(edges[:-1], edges[1:], result.values, strict=True):
                shown = (
                    "suppressed (fewer rows than min_cell_count)"
                    if math.isnan(value)
                    else (f"{value:.10g}")
                )
                print(f"  [{lo:g}, {hi:g}){'':<8} {shown}")
        elif len(result.labels) == result.values.size:
            tolerances = result.tolerances or {}
            for label, value in result.as_dict().items():
                tolerance = tolerances.get(label)
                shown = "" if tolerance is None else f"  (fixed point +/- {tolerance:.3g})"
                print(f"  {label:<20} {value:.10g}{shown}")
        else:
            print(
                f"  vector of {result.values.size} values"
                + (f" saved to {args.out}" if args.out else "")
            )
        print(
            f"  fixed-point tolerance +/- {result.tolerance:.3g} at most "
            f"({result.frac_bits} fractional bits)"
        )
        if result.privacy is not None:
            p = result.privacy
            print(
                f"  differential privacy: {p.noise} noise, epsilon {p.epsilon:g}, delta "
                f"{p.delta:g} (spent epsilon {p.epsilon_spent:.4g}, rho {p.rho_spent:.4g})"
            )
            kinds = p.error_kind or {}
            for label in p.sigma:
                kind = f" ({kinds[label]})" if label in kinds else ""
                print(
                    f"  {label:<20} noise sigma {p.sigma[label]:.4g}{kind}, "
                    f"95% error bound +/- {p.error_bound_95[label]:.4g}"
                )
    return 0


def _budget_line(status: BudgetStatus) -> str:
    spent = f"spent epsilon {status.spent_epsilon:.4g} over {status.charges} job(s)"
    if status.budget_epsilon is None:
        return f"  {status.dataset:<16} {spent}; no budget set"
    return (
        f"  {status.dataset:<16} {spent} of {status.budget_epsilon:g} (delta "
        f"{status.budget_delta:g}); remaining {status.remaining_epsilon:.4g} for one query"
    )


def _party_budget_line(status: BudgetStatus) -> str:
    """A party that keeps no ledger reports zeros: do not call that "spent 0"."""
    if status.budget_epsilon is None and status.charges == 0:
        return (
            f"  {status.dataset:<16} no charge recorded and no budget set (a party without a "
            "ledger records none: see its config)"
        )
    return _budget_line(status)


def cmd_budget_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        mine, parties = client.budgets()
    if args.json:
        print(
            json.dumps(
                {
                    "coordinator": [s.to_json() for s in mine],
                    "parties": {
                        p.party_id: {
                            "reachable": p.reachable,
                            "error": p.error,
                            "keeps_ledger": bool(p.budgets),
                            "budgets": [s.to_json() for s in p.budgets],
                        }
                        for p in parties
                    },
                }
            )
        )
        return 0
    print("coordinator ledger:")
    for status in mine or []:
        print(_budget_line(status))
    if not mine:
        print("  (no differentially private job yet, no budget set)")
    for party in parties:
        print(f"party {party.party_id}:" + ("" if party.reachable else f" DOWN ({party.error})"))
        if party.reachable and not party.budgets:
            print("  (keeps no privacy ledger)")
        for status in party.budgets:
            print(_party_budget_line(status))
    return 0


def cmd_parties(args: argparse.Namespace) -> int:
    with _client(args) as client:
        parties = client.parties()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "party_id": p.party_id,
                        "address": p.address,
                        "reachable": p.reachable,
                        "error": p.error,
                        "datasets": [
                            {
                                "name": d.name,
                                "kind": d.kind,
                                "max_rows": d.max_rows,
                                "available": d.available,
                                "columns": {c.name: [c.lo, c.hi] for c in d.columns},
                                "unavailable_columns": [
                                    c.name for c in d.columns if not c.available
                                ],
                                "participation": d.participation,
                                "cohort": list(d.cohort),
                                "min_parties": d.min_parties,
                                "max_bins": d.max_bins,
                            }
                            for d in p.datasets
                        ],
                    }
                    for p in parties
                ]
            )
        )
        return 0 if all(p.reachable for p in parties) else EXIT_FAILURE
    for p in parties:
        status = "up" if p.reachable else f"DOWN ({p.error})"
        print(f"{p.party_id} at {p.address}: {status}")
        for d in p.datasets:
            cols = ", ".join(
                c.name
                + (f" [{c.lo:g}, {c.hi:g}]" if c.lo is not None and c.hi is not None else "")
                + ("" if c.available else " (unavailable)")
                for c in d.columns
            )
            policy = d.participation + (f" {','.join(d.cohort)}" if d.cohort else "")
            state = "" if d.available else ", UNAVAILABLE (see the party's log)"
            print(f"  {d.name} ({d.kind}, max_rows {d.max_rows}, {policy}{state}): {cols}")
    return 0 if all(p.reachable for p in parties) else EXIT_FAILURE


def _when(seconds: float) -> str:
    import datetime as dt

    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_jobs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise QueryError(f"--limit must be at least 1, not {args.limit}")
    with _client(args) as client:
        jobs = client.jobs(limit=args.limit, all_clients=args.all)
    if args.json:
        print(json.dumps({"jobs": [job.to_json() for job in jobs]}))
        return 0
    if not jobs:
        print("no jobs" + ("" if args.all else " of yours"))
        return 0
    header = f"{'JOB':<21} {'STATE':<9} {'STATISTIC':<10} {'DATASET':<16} {'CREATED (UTC)':<19}"
    header += f" {'SECONDS':>7} {'EPSILON':>8}" + (" CLIENT" if args.all else "")
    print(header)
    for job in jobs:
        took = f"{job.finished_at - job.created_at:.1f}" if job.finished_at else "-"
        spent = f"{job.epsilon_spent:.4g}" if job.epsilon_spent else "-"
        line = (
            f"{job.job_id:<21} {job.state.value:<9} {job.statistic:<10} {job.dataset:<16} "
            f"{_when(job.created_at):<19} {took:>7} {spent:>8}"
        )
        if args.all:
            line += f" {job.submitted_by}"
        print(line)
        if job.error:
            print(f"  error: {job.error}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from mpc.transport.health import health_report

    report = health_report(Path(args.config), timeout=args.timeout)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.message)
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0 if report.serving else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace) -> int:
    from mpc.demo.run import run_demo

    return run_demo(
        parties=args.parties,
        rows=args.rows,
        as_json=args.json,
        keep=Path(args.keep) if args.keep else None,
    )


def cmd_compose(args: argparse.Namespace) -> int:
    from mpc.compose import ComposeOptions, write_bundle

    bundle = write_bundle(
        Path(args.out),
        ComposeOptions(
            parties=args.parties,
            rows=args.rows,
            image=args.image,
            coordinator_port=args.coordinator_port,
        ),
        force=args.force,
    )
    for warning in bundle.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(bundle.to_json()))
    else:
        print("\n".join(bundle.summary_lines()))
    return 0


def _audit_log_path(args: argparse.Namespace) -> Path:
    """The audit log named by a party config (no TLS files or data are read)."""
    from mpc.config import load_party_config

    config = load_party_config(Path(args.config))
    if config.audit_log is None:
        raise ConfigError(f"{args.config} keeps no audit log")
    return config.audit_log


def _audit_dp(dp: object) -> str:
    if not isinstance(dp, dict):
        return "-"
    rho = dp.get("rho")
    return (
        f"eps {dp.get('epsilon')} delta {dp.get('delta')} {dp.get('noise')}"
        + (f" rho {rho:.4g}" if isinstance(rho, int | float) else "")
        + ("" if dp.get("charged") else " (not charged)")
    )


def _audit_row(record: dict[str, object]) -> list[str]:
    bounds = record.get("bounds")
    try:
        columns = ", ".join(
            f"{name}[{lo:g},{hi:g}]"
            for name, (lo, hi) in (bounds.items() if isinstance(bounds, dict) else [])
        )
    except (TypeError, ValueError):
        columns = "?"
    participants = record.get("participants")
    event = record.get("event")
    return [
        str(record.get("seq", "?")),
        str(record.get("time", "")),
        str(record.get("outcome", event) or "?"),
        str(record.get("job_id", "-")),
        str(record.get("client", "-")),
        str(record.get("statistic", "-")),
        str(record.get("dataset", "-")),
        columns or "-",
        ",".join(str(p) for p in participants) if isinstance(participants, list) else "-",
        str(record.get("rounds", "-")),
        _audit_dp(record.get("dp")),
        str(record.get("reason", "")),
    ]


def cmd_audit_show(args: argparse.Namespace) -> int:
    from collections import deque

    from mpc.party.audit import read_records

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    path = _audit_log_path(args)
    if not path.exists():
        raise ConfigError(f"no audit log at {path} (the party creates it when it starts)")
    lines = deque(read_records(path), maxlen=args.limit)
    records = [record for _, record in lines if record is not None]
    bad = [number for number, record in lines if record is None]
    if bad:
        print(
            f"warning: skipped unreadable line(s) {', '.join(map(str, bad))}; "
            f"run `mpc audit verify --config {args.config}`",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(records))
        return 0
    if not records:
        print(f"{path}: no records")
        return 0
    headers = [
        "SEQ",
        "TIME",
        "OUTCOME",
        "JOB",
        "CLIENT",
        "STATISTIC",
        "DATASET",
        "COLUMNS",
        "PARTIES",
        "ROUNDS",
        "DP",
        "REASON",
    ]
    rows = [_audit_row(r) for r in records]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from mpc.party.audit import GENESIS, Verification, verify

    path = _audit_log_path(args)
    if path.exists():
        result = verify(path)
    else:
        result = Verification(path, False, 0, GENESIS, None, "no audit log at this path")
    if args.json:
        print(json.dumps(result.to_json()))
    elif result.ok:
        print(f"{path}: intact, {result.records} record(s); chain head {result.head}")
    else:
        where = f" at line {result.line}" if result.line is not None else ""
        print(
            f"{path}: BROKEN{where}: {result.problem}; the {result.records} record(s) "
            "before it verify"
        )
    if not args.json:
        for note in result.notes:
            print(f"note: {note}")
    return 0 if result.ok else EXIT_FAILURE


# --- parser ------------------------------------------------------------------------------


def _add_client_options(parser: argparse.ArgumentParser, *, runs_job: bool = False) -> None:
    parser.add_argument(
        "--coordinator", required=True, metavar="HOST:PORT", help="address of the coordinator"
    )
    parser.add_argument(
        "--tls-dir",
        required=True,
        metavar="DIR",
        help="folder with ca.pem, NAME.pem and NAME.key (from `mpc certs init`)",
    )
    parser.add_argument(
        "--name", default="client", help="client certificate name in --tls-dir (default: client)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help=(
            "seconds to wait for the job (default: 300)"
            if runs_job
            else "seconds to wait for the coordinator's answer (default: 300)"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_train(args: argparse.Namespace) -> int:
    from mpc.coordinator.service import JobEvent

    show_progress = not args.json and sys.stderr.isatty()

    def on_event(event: JobEvent) -> None:
        if show_progress:
            filled = int(24 * event.progress)
            bar = "#" * filled + "." * (24 - filled)
            print(
                f"\r[{bar}] {event.stage}: {event.message}".ljust(78),
                end="",
                file=sys.stderr,
                flush=True,
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
    if show_progress:
        print(file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(result.model, indent=2) + "\n")
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
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mpc.party.data import read_header
    from mpc.training import predict

    try:
        model = json.loads(Path(args.model).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the model {args.model}: {exc}") from None
    features = list(model["features"])
    header = read_header(Path(args.csv))
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mpc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpc",
        description="Secure multi-party sums, counts and means: every party keeps its rows, "
        "only the aggregate is revealed.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="DEBUG, INFO, WARNING (default) or ERROR; logs go to stderr",
    )
    parser.add_argument("--version", action="version", version=f"mpc {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    certs = sub.add_parser("certs", help="make and revoke certificates").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    init = certs.add_parser("init", help="create a CA and certificates for every role")
    init.add_argument("--out", required=True, help="folder to write PEM files to")
    init.add_argument("--parties", required=True, help="comma-separated party ids, e.g. a,b,c")
    init.add_argument("--clients", default="client", help="comma-separated client names")
    init.add_argument(
        "--admins",
        default="",
        metavar="A1,A2",
        help="comma-separated admin names: client certificates (role admin) that may also "
        "see and watch every client's jobs",
    )
    init.add_argument(
        "--hosts",
        default="",
        help="extra DNS names or IPs for every certificate's subjectAltName (server "
        "certificates always also name localhost and 127.0.0.1)",
    )
    init.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    init.add_argument("--force", action="store_true", help="replace an existing CA in --out")
    init.add_argument("--json", action="store_true", help="print the files written as JSON")
    init.set_defaults(func=cmd_certs_init)
    revoke = certs.add_parser(
        "revoke",
        help="revoke a certificate: add it to the CRL beside ca.pem",
        description="Add DIR/NAME.pem to the certificate revocation list DIR/crl.pem, signed "
        "with DIR/ca.key (created on first use; revoking twice changes nothing). Parties and "
        "the coordinator re-read the CRL when it changes and refuse the certificate from "
        "their next call on, without a restart.",
    )
    revoke.add_argument("name", metavar="NAME", help="certificate to revoke: DIR/NAME.pem")
    revoke.add_argument(
        "--tls-dir",
        "--out",
        dest="tls_dir",
        required=True,
        metavar="DIR",
        help="folder with ca.pem, ca.key and NAME.pem (the --out of `mpc certs init`)",
    )
    revoke.add_argument("--crl", metavar="FILE", help="CRL to update (default: DIR/crl.pem)")
    revoke.add_argument("--json", action="store_true", help="print one JSON object")
    revoke.set_defaults(func=cmd_certs_revoke)

    for role, func, what in (
        ("party", cmd_party_serve, "serve this institution's datasets to the coordinator"),
        ("coordinator", cmd_coordinator_serve, "orchestrate jobs across the parties"),
    ):
        serve = sub.add_parser(role, help=f"run a {role}").add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        run = serve.add_parser("serve", help=what)
        run.add_argument(
            "--config",
            default=os.environ.get("MPC_CONFIG"),
            required="MPC_CONFIG" not in os.environ,
            help=f"{role} TOML config file (default: $MPC_CONFIG)",
        )
        run.add_argument("--ready-file", help="write {address, port, pid} as JSON once serving")
        run.set_defaults(func=func)

    query = sub.add_parser(
        "query",
        help="run a secure query",
        description="Run a secure sum, count, mean, variance, histogram or vector-sum. Bounds: "
        "--bounds LO:HI for every column, or --bounds COLUMN=LO:HI per column; write negative "
        "bounds as --bounds=-5:5. Columns without --bounds use the bounds the parties declare. "
        "A histogram takes one --column and --bins E0,E1,...,Ek (strictly increasing; values "
        "outside [E0, Ek] are counted in the first/last bin).",
    )
    query.add_argument(
        "statistic",
        choices=["sum", "count", "mean", "variance", "histogram", "vector-sum", "vector_sum"],
        help="what to compute (vector-sum and vector_sum are the same)",
    )
    query.add_argument("--dataset", required=True, help="dataset name the parties declare")
    query.add_argument(
        "--column", action="append", default=[], help="column name (repeat, or comma-separate)"
    )
    query.add_argument(
        "--bounds",
        action="append",
        default=[],
        metavar="[COLUMN=]LO:HI",
        help="clamp values to [LO, HI]",
    )
    query.add_argument(
        "--bins",
        metavar="E0,E1,...,Ek",
        help="histogram bin edges, strictly increasing (negative first edge: --bins=-1,0,1)",
    )
    query.add_argument(
        "--parties",
        help=(
            "comma-separated parties to ask (default: all); a cohort dataset is answered only "
            "for its whole cohort, subsets only on dp-only datasets"
        ),
    )
    query.add_argument(
        "--frac-bits",
        type=int,
        metavar="N",
        help="fixed-point fractional bits, 0 (integers) to the ring's maximum (default: "
        "the coordinator's)",
    )
    query.add_argument("--out", help="save the values as a .npy file (vector results)")
    query.add_argument(
        "--epsilon", type=float, help="differential privacy: add calibrated noise for this epsilon"
    )
    query.add_argument(
        "--delta",
        type=float,
        default=1e-6,
        help="DP delta (default 1e-6; 0 = pure epsilon-DP, central noise only)",
    )
    query.add_argument(
        "--noise",
        choices=["distributed", "central"],
        default="distributed",
        help="who adds the noise: every party before masking (distributed, "
        "default: nobody sees the exact result) or the coordinator (central)",
    )
    _add_client_options(query, runs_job=True)
    query.set_defaults(func=cmd_query)

    parties = sub.add_parser("parties", help="list parties and their public dataset schemas")
    _add_client_options(parties)
    parties.set_defaults(func=cmd_parties)

    budget = sub.add_parser("budget", help="privacy budgets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    show = budget.add_parser(
        "show", help="spent and remaining privacy budget per dataset, coordinator and parties"
    )
    _add_client_options(show)
    show.set_defaults(func=cmd_budget_show)

    jobs = sub.add_parser(
        "jobs",
        help="list your jobs, newest first: state, statistic, dataset, time, privacy spent",
    )
    jobs.add_argument(
        "--all", action="store_true", help="every client's jobs (needs an admin certificate)"
    )
    jobs.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    _add_client_options(jobs)
    jobs.set_defaults(func=cmd_jobs)

    health = sub.add_parser(
        "health",
        help="check a party or coordinator via gRPC health",
        description="Ask the server in --config whether it is serving, with its own "
        "certificate. Exit 0 when serving. Fails if that certificate is expired or revoked; "
        "warns (on stderr, or under 'warnings' with --json) when it expires within 30 days.",
    )
    health.add_argument(
        "--config",
        default=os.environ.get("MPC_CONFIG"),
        required="MPC_CONFIG" not in os.environ,
        help="the server's own TOML config (default: $MPC_CONFIG)",
    )
    health.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the answer (default: 5)"
    )
    health.add_argument("--json", action="store_true", help="print one JSON object")
    health.set_defaults(func=cmd_health)

    demo = sub.add_parser(
        "demo",
        help="run a local multi-party demo",
        description="Generate synthetic health records for each party, start a coordinator and "
        "the parties as local processes with mutual TLS, run secure sum/count/mean, and print "
        "them beside the plaintext results. Exits 1 if they disagree.",
    )
    demo.add_argument("--parties", type=int, default=3, help="number of parties (2-26, default 3)")
    demo.add_argument(
        "--rows",
        type=int,
        default=1000,
        metavar="N",
        help="rows of the first party; party i (from 0) gets N + 37*i, so parties differ "
        "(default 1000)",
    )
    demo.add_argument("--keep", metavar="DIR", help="keep certificates, data and logs in DIR")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.set_defaults(func=cmd_demo)

    compose = sub.add_parser(
        "compose",
        help="write an N-party Docker deployment (docker-compose)",
        description="Write everything for a Docker deployment into --out: certificates, a "
        "config per container, synthetic health records per party and a compose.yaml for "
        "docker-compose. Parties are a, b, c, ... on an internal network; the coordinator "
        "publishes its port on 127.0.0.1 only. Prints the commands to run next.",
    )
    compose.add_argument("--parties", type=int, default=3, help="number of parties (2-26)")
    compose.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    compose.add_argument(
        "--rows",
        type=int,
        default=1000,
        metavar="N",
        help="rows of the first party; party i (from 0) gets N + 37*i (default 1000)",
    )
    compose.add_argument("--image", default="mpc:dev", help="image to run (default mpc:dev)")
    compose.add_argument(
        "--coordinator-port",
        type=int,
        default=50050,
        metavar="PORT",
        help="port published on 127.0.0.1 for clients (default 50050)",
    )
    compose.add_argument(
        "--force", action="store_true", help="replace a bundle in a non-empty --out (new CA)"
    )
    compose.add_argument("--json", action="store_true", help="print one JSON object")
    compose.set_defaults(func=cmd_compose)
    train = sub.add_parser(
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
    _add_client_options(train, runs_job=True)
    train.set_defaults(func=cmd_train)

    predict = sub.add_parser("predict", help="apply a model file to a CSV, locally")
    predict.add_argument("--model", required=True, help="model JSON from mpc train --out")
    predict.add_argument("--csv", required=True, help="CSV with a header naming the features")
    predict.add_argument("--out", help="write predictions (and probabilities) as CSV")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(func=cmd_predict)

    audit = sub.add_parser(
        "audit",
        help="a party's audit log: every job it saw",
        description="Read a party's audit log (the audit_log path of its config): every job "
        "it accepted or refused, hash-chained. Reads only the config and the log.",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, func, what in (
        ("show", cmd_audit_show, "print the records (a table, or --json: a JSON array)"),
        ("verify", cmd_audit_verify, "check the hash chain; exit 1 at the first bad line"),
    ):
        run = audit.add_parser(action, help=what)
        run.add_argument(
            "--config",
            default=os.environ.get("MPC_CONFIG"),
            required="MPC_CONFIG" not in os.environ,
            help="the party's TOML config (default: $MPC_CONFIG)",
        )
        if action == "show":
            run.add_argument("--limit", type=int, metavar="N", help="only the last N records")
        run.add_argument("--json", action="store_true", help="print JSON")
        run.set_defaults(func=func)
    return parser


def _single_threaded_blas() -> None:
    """Servers: one BLAS thread per process unless the operator chose otherwise.

    Their matrix work is small (a gradient over 10^4 x 100 rows is a 0.2 ms GEMV on one
    thread) and several server processes often share a machine; multi-threaded BLAS then
    spends more time synchronising than computing (measured: 7 ms instead of 0.2 ms on 2
    cores). Must run before numpy is imported, hence here and not in the modules.
    """
    if "numpy" not in sys.modules:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", None) == "serve":
        _single_threaded_blas()
    _configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except (QueryError, ConfigError, InputDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MpcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `mpc parties | head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file or socket the command needed: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
