"""``mpc audit show`` and ``mpc audit verify``: read a party's hash-chained audit log."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mpc.cli._common import EXIT_FAILURE
from mpc.errors import ConfigError


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = subparsers.add_parser(
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
