"""``mpc query covariance|correlation|contingency|ttest|quantile|median``: the analyses.

:func:`register` adds one sub-command per analysis to a sub-parsers action (the query
command's). Group keys on the command line: ``COLUMN`` (a categorical column, its declared
categories), ``COLUMN=A,B,C`` (these categories) or ``COLUMN:E0,E1,...`` (a numeric column cut
at bin edges; negative first edge: ``--by=x:-1,0,1``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING, Any

from mpc.cli._common import _add_client_options, _client, _columns, _parse_bounds
from mpc.errors import QueryError

if TYPE_CHECKING:
    # numpy and the frame module are imported where used: `mpc --help` and the basic queries
    # parse without them (tests/unit/test_cli_lazy_imports.py).
    from mpc.protocol.frame import GroupKey

ANALYSES = ("covariance", "correlation", "contingency", "ttest", "quantile", "median")


def parse_key(text: str) -> str | GroupKey:
    """``COLUMN``, ``COLUMN=A,B`` (categories) or ``COLUMN:E0,E1,...`` (bin edges)."""
    from mpc.protocol.frame import GroupKey

    name, eq, categories = text.partition("=")
    if eq:
        values = tuple(c.strip() for c in categories.split(",") if c.strip())
        if not name.strip() or not values:
            raise QueryError(f"group key {text!r}: expected COLUMN=A,B,...")
        return GroupKey(name.strip(), categories=values)
    name, colon, edges = text.partition(":")
    if colon:
        try:
            cuts = tuple(float(e) for e in edges.split(",") if e.strip())
        except ValueError:
            raise QueryError(f"group key {text!r}: expected COLUMN:E0,E1,... numbers") from None
        if not name.strip() or len(cuts) < 2:
            raise QueryError(f"group key {text!r}: give at least 2 bin edges")
        return GroupKey(name.strip(), edges=cuts)
    if not text.strip():
        raise QueryError("empty group key")
    return text.strip()


def _numbers(text: str | None, what: str) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise QueryError(f"{what} {text!r}: expected comma-separated numbers") from None


def _query_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "frac_bits": args.frac_bits,
        "epsilon": args.epsilon,
        "delta": args.delta,
        "noise": args.noise,
    }
    if args.parties:
        options["parties"] = _columns([args.parties])
    if args.where:
        options["where"] = args.where
    return options


def _run(args: argparse.Namespace, client: Any) -> Any:
    analysis = args.analysis
    options = _query_options(args)
    columns = _columns(getattr(args, "column", []))
    if analysis in ("covariance", "correlation", "ttest"):
        bounds = _parse_bounds(args.bounds, columns) or None
        if analysis == "ttest":
            return client.ttest(args.dataset, columns, parse_key(args.by), bounds, **options)
        keys = [parse_key(k) for k in args.by]
        method = client.covariance if analysis == "covariance" else client.correlation
        return method(args.dataset, columns, bounds, group_by=keys, **options)
    if analysis == "contingency":
        rows, cols = parse_key(args.rows), parse_key(args.cols)
        return client.contingency(args.dataset, rows, cols, **options)
    if len(columns) != 1:
        raise QueryError(f"{analysis} takes exactly one --column")
    edges = _numbers(args.bins, "--bins") or None
    span: tuple[float, float] | None = None
    if args.bounds:
        span = _parse_bounds(args.bounds, columns).get(columns[0])
        if span is None:
            raise QueryError(f"--bounds: give LO:HI for {columns[0]!r}")
    if args.bin_count is not None:
        options["bins"] = args.bin_count
    keys = [parse_key(k) for k in args.by]
    probabilities = [0.5] if analysis == "median" else _numbers(args.quantiles, "--quantiles")
    if not probabilities:
        raise QueryError("quantile needs --quantiles P1,P2,... (each between 0 and 1)")
    return client.quantiles(
        args.dataset, columns[0], probabilities, span, edges=edges, group_by=keys, **options
    )


def _print_table(result: Any) -> None:
    import numpy as np

    to_pandas = getattr(result, "to_pandas", None)
    try:
        import pandas as pd
    except ImportError:  # pandas is optional (mpc[analysis]): print one value per line
        to_pandas = None
    if to_pandas is not None:
        frame = to_pandas()
        if result.statistic == "contingency":
            counts = frame.to_numpy(dtype=np.float64)
            if np.all(np.isfinite(counts)):  # counts print as integers (exact or rounded DP)
                frame = frame.astype(np.int64)
        with pd.option_context("display.max_rows", 200, "display.width", 120):
            print(frame)
        layout = getattr(result, "table_layout", None)
        for name in layout().extras if layout is not None else []:  # chi2, dof, p_value
            print(f"{name}: {frame.attrs[name]:.6g}")
        return
    for label, value in zip(result.labels, np.asarray(result.values).tolist(), strict=False):
        print(f"  {label:<32} {'NaN' if math.isnan(value) else f'{value:.10g}'}")


def cmd_analysis(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = _run(args, client)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(
        f"{args.analysis} over {result.dataset!r} from parties {', '.join(result.parties)}"
        f" (job {result.job_id}):"
    )
    _print_table(result)
    if result.privacy is not None:
        p = result.privacy
        print(
            f"  differential privacy: {p.noise} noise, epsilon {p.epsilon:g}, delta "
            f"{p.delta:g} (spent epsilon {p.epsilon_spent:.4g})",
            file=sys.stdout,
        )
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset name the parties declare")
    parser.add_argument(
        "--parties", help="comma-separated parties to ask (default: all)", default=None
    )
    parser.add_argument("--frac-bits", type=int, metavar="N", help="fixed-point fractional bits")
    parser.add_argument(
        "--where",
        metavar="EXPR",
        help="row filter, e.g. \"age >= 40 and smoker in ('yes')\" (exact results only where "
        "the parties allow filters; with --epsilon always)",
    )
    parser.add_argument("--epsilon", type=float, help="differential privacy: epsilon")
    parser.add_argument("--delta", type=float, default=1e-6, help="DP delta (default 1e-6)")
    parser.add_argument(
        "--noise",
        choices=["distributed", "central"],
        default="distributed",
        help="who adds the DP noise (default: distributed)",
    )
    _add_client_options(parser, runs_job=True)


def _columns_and_bounds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--column", action="append", default=[], help="column name (repeat, or comma-separate)"
    )
    parser.add_argument(
        "--bounds", action="append", default=[], metavar="[COLUMN=]LO:HI", help="clamp values"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the analyses' commands to ``subparsers`` (the ``query`` command's)."""
    helps = {
        "covariance": "sample covariance matrix of the columns (one Gram round)",
        "correlation": "Pearson correlation matrix of the columns",
        "contingency": "counts over two keys with a chi-square test of independence",
        "ttest": "Welch's t-test per column between the two groups of a key",
        "quantile": "quantiles of one column from a fine histogram (error: a bin width)",
        "median": "the median of one column (quantile 0.5)",
    }
    key_help = "group key: COLUMN, COLUMN=A,B,... (categories) or COLUMN:E0,E1,... (bins)"
    for name in ANALYSES:
        parser = subparsers.add_parser(name, help=helps[name], description=helps[name])
        if name != "contingency":
            _columns_and_bounds(parser)
        if name in ("covariance", "correlation", "quantile", "median"):
            parser.add_argument(
                "--by", action="append", default=[], metavar="KEY", help=f"{key_help}; repeat"
            )
        if name == "ttest":
            parser.add_argument("--by", required=True, metavar="KEY", help=key_help)
        if name == "contingency":
            parser.add_argument("--rows", required=True, metavar="KEY", help=key_help)
            parser.add_argument("--cols", required=True, metavar="KEY", help=key_help)
        if name in ("quantile", "median"):
            parser.add_argument(
                "--bins", metavar="E0,E1,...,Ek", help="histogram bin edges (instead of --bounds)"
            )
            parser.add_argument(
                "--bin-count",
                type=int,
                metavar="N",
                help="equal bins over --bounds (default 1024; the error is a bin width)",
            )
        if name == "quantile":
            parser.add_argument(
                "--quantiles", required=True, metavar="P1,P2,...", help="probabilities in (0, 1)"
            )
        _common(parser)
        parser.set_defaults(func=cmd_analysis, analysis=name)


__all__ = ["ANALYSES", "cmd_analysis", "parse_key", "register"]
