"""Client commands against a coordinator: ``query``, ``parties``, ``budget show`` and
``jobs``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from mpc.cli._common import (
    EXIT_FAILURE,
    _add_client_options,
    _client,
    _columns,
    _parse_bounds,
    _parse_group_by,
    format_table,
)
from mpc.errors import QueryError

if TYPE_CHECKING:
    from mpc.budget_status import BudgetStatus
    from mpc.coordinator.events import JobEvent


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
            where=args.where or None,
            group_by=_parse_group_by(args.group_by),
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
        if result.grouped:
            for line in format_table(result):
                print(line)
        elif statistic == "histogram" and result.values.size <= 50:
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
                                "exact_filters": d.exact_filters,
                                "categories": {
                                    c.name: list(c.categories) for c in d.columns if c.categories
                                },
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
                + (f" {{{', '.join(c.categories)}}}" if c.categories else "")
                + ("" if c.available else " (unavailable)")
                for c in d.columns
            )
            policy = d.participation + (f" {','.join(d.cohort)}" if d.cohort else "")
            policy += ", exact filters" if d.exact_filters else ""
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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    query = subparsers.add_parser(
        "query",
        help="run a secure query",
        description="Run a secure sum, count, mean, variance, histogram or vector-sum. Bounds: "
        "--bounds LO:HI for every column, or --bounds COLUMN=LO:HI per column; write negative "
        "bounds as --bounds=-5:5. Columns without --bounds use the bounds the parties declare. "
        "A histogram takes one --column and --bins E0,E1,...,Ek (strictly increasing; values "
        "outside [E0, Ek] are counted in the first/last bin). --where EXPR filters rows and "
        "--group-by COL computes per group (exact results only where the parties allow it; "
        "with DP always). Analyses have their own commands: mpc query covariance|correlation|"
        "contingency|ttest|quantile|median --help.",
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
        "--where",
        metavar="EXPR",
        help="filter rows, e.g. \"age >= 40 and (smoker in ('yes') or bmi < 30)\" "
        "(exact results need the parties' exact_filters policy; with --epsilon always allowed)",
    )
    query.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="COL[,COL]",
        help="compute per group: categorical columns (their declared categories), or "
        "COL:E0,E1,...,Ek for a numeric column cut at bin edges; repeat or comma-separate",
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

    parties = subparsers.add_parser("parties", help="list parties and their public dataset schemas")
    _add_client_options(parties)
    parties.set_defaults(func=cmd_parties)

    budget = subparsers.add_parser("budget", help="privacy budgets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    show = budget.add_parser(
        "show", help="spent and remaining privacy budget per dataset, coordinator and parties"
    )
    _add_client_options(show)
    show.set_defaults(func=cmd_budget_show)

    jobs = subparsers.add_parser(
        "jobs",
        help="list your jobs, newest first: state, statistic, dataset, time, privacy spent",
    )
    jobs.add_argument(
        "--all", action="store_true", help="every client's jobs (needs an admin certificate)"
    )
    jobs.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    _add_client_options(jobs)
    jobs.set_defaults(func=cmd_jobs)
