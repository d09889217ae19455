"""The ``mpc`` command line: ``build_parser`` and ``main``; each command group is a module here.

A command parses, validates, makes one typed call, and prints.

Errors from mpc print one line (``error: ...``) and exit 2 for bad input, 1 for failures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mpc.cli import analyses, audit, certs, ops, query, serve, train
from mpc.cli._common import EXIT_FAILURE, EXIT_USAGE, _configure_logging
from mpc.cli._common import _parse_bounds as _parse_bounds  # re-exported for tests
from mpc.errors import ConfigError, InputDataError, MpcError, QueryError

__all__ = ["build_parser", "main"]

_EPILOG = """\
examples:
  mpc demo                                   run a 3-party demo on this machine
  mpc certs init --out certs --parties a,b,c
  mpc party serve --config party-a.toml
  mpc coordinator serve --config coordinator.toml
  mpc query mean --dataset health --column age --bounds 18:100 \\
      --coordinator 127.0.0.1:50050 --tls-dir certs --json
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mpc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "(not installed)"


class _VersionAction(argparse._VersionAction):
    """``--version``, its version looked up only when asked (importlib.metadata would cost
    every other command ~15 ms)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        self.version = f"mpc {_version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser(analysis: bool = False) -> argparse.ArgumentParser:
    """The CLI's parser; ``analysis``: ``mpc query`` takes the analyses' commands
    (covariance, correlation, contingency, ttest, quantile, median), whose arguments differ
    from the basic statistics'."""
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
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    certs.add_parser(sub)
    serve.add_parser(sub)
    if analysis:
        analyses.register(
            sub.add_parser("query", help="run a secure query").add_subparsers(
                dest="analysis_command", required=True, metavar="ANALYSIS"
            )
        )
    else:
        query.add_parser(sub)
    ops.add_parser(sub)
    train.add_parser(sub)
    audit.add_parser(sub)
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


def _is_analysis(argv: Sequence[str]) -> bool:
    """Is this ``mpc [options] query <analysis> ...``?"""
    items = list(argv)
    if "query" not in items:
        return False
    after = items.index("query") + 1
    return after < len(items) and items[after] in analyses.ANALYSES


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(analysis=_is_analysis(argv))
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
