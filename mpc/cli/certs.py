"""``mpc certs init`` and ``mpc certs revoke``: the CA, certificates and CRL."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mpc.cli._common import _columns


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = subparsers.add_parser("certs", help="make and revoke certificates").add_subparsers(
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
