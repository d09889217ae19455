"""Operator commands: ``health`` (probe a server), ``demo`` (a local cluster) and
``compose`` (a Docker deployment bundle)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mpc.cli._common import EXIT_FAILURE


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = subparsers.add_parser(
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

    demo = subparsers.add_parser(
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

    compose = subparsers.add_parser(
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
