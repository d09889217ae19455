"""A throwaway PostgreSQL server for tests: initdb into a temporary directory, listen on
127.0.0.1 at a free port (and a unix socket in that directory), stop and delete at the end.

initdb refuses to run as root, so as root the server runs as the ``postgres`` OS user
(``runuser -u postgres --``). Binaries: ``$PG_BINDIR``, else the newest
``/usr/lib/postgresql/*/bin``, else ``initdb`` on PATH. Missing binaries: the fixture skips
with the reason, or fails when ``CI=true`` (.ci/postgres-setup.sh installs them there).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PgServer:
    dsn: str
    port: int
    directory: Path


def bindir() -> Path | None:
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return Path(configured) if (Path(configured) / "initdb").exists() else None
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], as_postgres: bool) -> None:
    if as_postgres:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")


def start_server() -> Iterator[PgServer]:
    """Start a server; yields it and stops it (a generator for a session fixture)."""
    binaries = bindir()
    if binaries is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required when CI=true: run .ci/postgres-setup.sh)")
        pytest.skip(reason)
    root = os.geteuid() == 0
    directory = Path(tempfile.mkdtemp(prefix="mpc-pg-"))
    data = directory / "data"
    if root:
        shutil.chown(directory, "postgres", "postgres")
    os.chmod(directory, 0o700)
    port = _free_port()
    _run(
        [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        root,
    )
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = str(binaries / "pg_ctl")
    _run(
        [pg_ctl, "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"], root
    )
    try:
        yield PgServer(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", port, directory)
    finally:
        try:
            _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], root)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
