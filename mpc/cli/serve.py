"""``mpc party serve`` and ``mpc coordinator serve``: run a server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for role, func, what in (
        ("party", cmd_party_serve, "serve this institution's datasets to the coordinator"),
        ("coordinator", cmd_coordinator_serve, "orchestrate jobs across the parties"),
    ):
        serve = subparsers.add_parser(role, help=f"run a {role}").add_subparsers(
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
