"""Helpers shared by the command modules: exit codes, logging, argument parsing and the
client built from the common client options."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mpc.errors import QueryError

if TYPE_CHECKING:
    from mpc.results import QueryResult

EXIT_FAILURE = 1
EXIT_USAGE = 2


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


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from mpc.client import Client

    return Client(args.coordinator, tls_dir=args.tls_dir, name=args.name, timeout=args.timeout)


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


def _parse_group_by(values: list[str]) -> list[str]:
    """``--group-by COL[,COL]`` (repeatable); ``COL:E0,E1,...`` is a numeric column cut at
    bin edges (the numbers after it belong to it)."""
    items: list[str] = []
    for value in values:
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if items and ":" in items[-1] and _is_number(piece):
                items[-1] += "," + piece
            else:
                items.append(piece)
    return items


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Rows of a grouped result printed before "... N more" (all of them with --json).
MAX_TABLE_ROWS = 200


def format_table(result: QueryResult) -> list[str]:
    """A grouped result as an aligned text table: key columns, then the values."""
    layout = result.table_layout()
    cols = len(layout.columns)
    header = [*layout.index_names, *layout.columns]
    rows = []
    for i, key in enumerate(layout.index[:MAX_TABLE_ROWS]):
        values = result.values[i * cols : (i + 1) * cols]
        shown = [
            "suppressed" if math.isnan(v) and result.privacy is None else f"{v:.6g}" for v in values
        ]
        rows.append([*key, *shown])
    widths = [max(len(str(r[j])) for r in [header, *rows]) for j in range(len(header))]
    keys = len(layout.index_names)

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(
            str(c).ljust(w) if j < keys else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), "  " + "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if len(layout.index) > MAX_TABLE_ROWS:
        out.append(f"  ... {len(layout.index) - MAX_TABLE_ROWS} more rows (use --json)")
    if result.privacy is None and any(math.isnan(v) for v in result.values):
        out.append("  (suppressed: fewer rows than min_cell_count; NaN: no rows)")
    return out
