"""Helpers shared by the command modules: exit codes, logging, argument parsing and the
client built from the common client options."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence

from mpc.errors import QueryError

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
